"""Retention cleanup SQL (cleanup-old-results): one bounded batch per call, in the caller's transaction.

Everything runs as `service_role` through ordinary SQL, so the database's own rules apply to cleanup as to any
other writer: the realtime capture trigger turns each deleted result into a DELETE event for its owner. The
caller (workers/maintenance.py) commits each batch on its own (`CLEANUP_BATCH_SIZE` rows, `FOR UPDATE SKIP
LOCKED`), so a cleanup of millions of rows never holds locks for long nor blocks a user's request.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine, text

from db.uow import UnitOfWork

# Session advisory lock held by the one running cleanup (advisory locks are per database: one per deployment).
CLEANUP_LOCK_KEY = 0x5E6B_C1EA
NEVER = datetime.fromisoformat("0001-01-01T00:00:00+00:00")
INBOX_TABLE = "internal.webhook_inbox"

DELETE_EXPIRED_RESULTS = text("""
with retention as (
  select tier, make_interval(days => internal.config_int('retention_days_' || tier::text)::int) as keep
    from unnest(enum_range(null::public.user_tier)) as tier
), doomed as (
  select r.id, r.created_at
    from public.segmentation_results r
    join public.users_profile p on p.id = r.user_id
    join retention k on k.tier = p.tier
   where r.created_at >= :cursor
     and r.created_at < now() - (select min(keep) from retention)
     and r.created_at < now() - k.keep
     and r.status in ('done', 'error')
   order by r.created_at
   limit :batch
   for update of r skip locked
), gone as (
  delete from public.segmentation_results r using doomed d where r.id = d.id returning d.created_at
)
select count(*) as deleted, max(created_at) as last_created_at from gone
""")


class CleanupBusy(Exception):
    """Another cleanup holds the lock (two beats, or a beat run and an on-demand run at once)."""


@contextmanager
def cleanup_lock(engine: Engine) -> Iterator[None]:
    """Hold the cleanup's session advisory lock on a dedicated connection for the whole run (so it takes an engine,
    not a unit of work); a crash drops the connection and with it the lock. Raises CleanupBusy at once when another
    run holds it."""
    with engine.connect() as conn:
        acquired = conn.execute(text("select pg_try_advisory_lock(:key)"), {"key": CLEANUP_LOCK_KEY}).scalar()
        conn.commit()
        if not acquired:
            raise CleanupBusy("another cleanup-old-results run holds the lock")
        try:
            yield
        finally:
            conn.execute(text("select pg_advisory_unlock(:key)"), {"key": CLEANUP_LOCK_KEY})
            conn.commit()


def delete_expired_batch(uow: UnitOfWork, *, cursor: datetime, batch_size: int) -> tuple[int, datetime | None]:
    """Delete up to `batch_size` done/error results older than their owner's tier retention, oldest first from
    `cursor`; returns how many and the newest `created_at` deleted (the next batch's cursor)."""
    row = uow.execute(DELETE_EXPIRED_RESULTS, {"cursor": cursor, "batch": batch_size}).one()
    return row.deleted, row.last_created_at


def prune_inbox_batch(uow: UnitOfWork, retention_days: int, batch_size: int) -> int:
    """Delete up to `batch_size` finished inbox events older than the retention (unfinished ones never)."""
    return uow.execute(
        f"delete from {INBOX_TABLE} where id in (select id from {INBOX_TABLE} "
        "where state <> 'received' and finished_at < now() - make_interval(days => :days) "
        "limit :batch for update skip locked)",
        {"days": retention_days, "batch": batch_size}).rowcount
