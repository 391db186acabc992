"""Maintenance SQL: retention cleanup, reconciliation of stuck results, job records and pipeline health.

Everything runs as `service_role` through ordinary SQL, so the database's own rules apply to maintenance as to
any other writer: the realtime capture trigger turns each deleted result into a DELETE event for its owner, and
the pipeline's transition trigger releases a timed-out result's credit reservation. Work is split into bounded
transactions (`CLEANUP_BATCH_SIZE` rows, `FOR UPDATE SKIP LOCKED`) so a cleanup of millions of rows never holds
locks for long nor blocks a user's request on a row it is deleting.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from db.outbox import prune_sent
from db.uow import Caller, UnitOfWork, unit_of_work

# Session advisory lock held by the one running cleanup (advisory locks are per database: one per deployment).
CLEANUP_LOCK_KEY = 0x5E6B_C1EA
KIND_CLEANUP = "cleanup_old_results"
FINAL_JOB_STATES = ("done", "skipped", "failed")
NEVER = datetime.fromisoformat("0001-01-01T00:00:00+00:00")

# The inbox table and the states in which an event is finished (issue 7's pipeline owns the table).
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

# With dispatch on, RESULT_TIMEOUT_SECONDS counts from the job's first delivery or lease (or the result's last
# progress, whichever is later); a job not yet delivered nor leased is bounded by DISPATCH_QUEUE_TIMEOUT_SECONDS
# instead (db/dispatch.py). `r.updated_at < …` alone is what the index serves; the rest filters the few in flight.
TIME_OUT_STUCK_RESULTS = text("""
with stuck as (
  select r.id from public.segmentation_results r
    left join internal.dispatch_jobs j on j.result_id = r.id
   where r.status in ('pending', 'processing')
     and r.updated_at < now() - make_interval(secs => :timeout)
     and (j.first_dispatched_at is null or j.first_dispatched_at < now() - make_interval(secs => :timeout))
     and not (:dispatch_on and j.first_dispatched_at is null and j.state in ('queued', 'sending'))
   order by r.updated_at
   limit :batch
   for update of r skip locked
)
update public.segmentation_results r
   set status = 'error',
       metadata = r.metadata || jsonb_build_object('error', 'timeout', 'timed_out_at', now())
  from stuck
 where r.id = stuck.id
returning r.id
""")


@dataclass
class CleanupCounts:
    """What one cleanup run did; stored as the job's `counts` and returned by the GET endpoint."""

    results: int = 0
    inbox: int = 0
    outbox: int = 0
    transactions: int = 0
    longest_transaction_ms: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["longest_transaction_ms"] = round(self.longest_transaction_ms, 1)
        values["seconds"] = round(self.seconds, 3)
        return values


class CleanupBusy(Exception):
    """Another cleanup holds the lock (two beats, or a beat run and an on-demand run at once)."""


# --- the cleanup job ------------------------------------------------------------------------------------
@contextmanager
def cleanup_lock(engine: Engine) -> Iterator[None]:
    """Hold the cleanup's session advisory lock on a dedicated connection for the whole run; a crash drops
    the connection and with it the lock. Raises CleanupBusy at once when another run holds it."""
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


def _timed_batch(engine: Engine, counts: CleanupCounts, work) -> Any:
    """Run `work(uow)` in its own service_role transaction, recording its duration (commit included)."""
    started = time.perf_counter()
    with unit_of_work(engine, Caller.service()) as uow:
        value = work(uow)
    elapsed_ms = (time.perf_counter() - started) * 1000
    counts.transactions += 1
    counts.longest_transaction_ms = max(counts.longest_transaction_ms, elapsed_ms)
    return value


def delete_expired_results(engine: Engine, batch_size: int, counts: CleanupCounts, on_batch=None) -> None:
    """Delete done/error results older than their owner's tier retention, oldest first, `batch_size` per
    transaction. The cursor only moves forward over rows kept on purpose (another tier's longer retention, a
    row still in flight), so each is read once per run instead of once per batch; `>=` keeps rows sharing the
    cursor's timestamp in view. A batch smaller than `batch_size` means the range is exhausted."""
    cursor = NEVER
    while True:
        row = _timed_batch(engine, counts, lambda uow: uow.execute(
            DELETE_EXPIRED_RESULTS, {"cursor": cursor, "batch": batch_size}).one())
        counts.results += row.deleted
        if on_batch and row.deleted:
            on_batch("results", row.deleted)
        if row.deleted < batch_size:
            return
        cursor = row.last_created_at


def prune_inbox_batch(uow: UnitOfWork, retention_days: int, batch_size: int) -> int:
    """Delete up to `batch_size` finished inbox events older than the retention (unfinished ones never)."""
    return uow.execute(
        f"delete from {INBOX_TABLE} where id in (select id from {INBOX_TABLE} "
        "where state <> 'received' and finished_at < now() - make_interval(days => :days) "
        "limit :batch for update skip locked)",
        {"days": retention_days, "batch": batch_size}).rowcount


def prune_in_batches(engine: Engine, counts: CleanupCounts, field: str, prune, batch_size: int,
                     on_batch=None) -> None:
    while True:
        removed = _timed_batch(engine, counts, prune)
        setattr(counts, field, getattr(counts, field) + removed)
        if on_batch and removed:
            on_batch(field, removed)
        if removed < batch_size:
            return


def run_cleanup(engine: Engine, *, batch_size: int, inbox_retention_days: int, outbox_retention_hours: int,
                on_batch=None) -> CleanupCounts:
    """The cleanup-old-results work; the caller holds `cleanup_lock`. Results first, then finished inbox rows,
    then sent outbox rows (the results' DELETE events are unsent outbox rows, so they are never pruned before
    the relay sends them). `on_batch(table, rows)` is called after each committed batch (metrics)."""
    counts = CleanupCounts()
    started = time.perf_counter()
    delete_expired_results(engine, batch_size, counts, on_batch)
    prune_in_batches(engine, counts, "inbox",
                     lambda uow: prune_inbox_batch(uow, inbox_retention_days, batch_size), batch_size, on_batch)
    prune_in_batches(engine, counts, "outbox",
                     lambda uow: prune_sent(uow, outbox_retention_hours, batch_size), batch_size, on_batch)
    counts.seconds = time.perf_counter() - started
    return counts


# --- job records ----------------------------------------------------------------------------------------
def create_job(uow: UnitOfWork, trigger: str, kind: str = KIND_CLEANUP) -> str:
    return str(uow.execute("insert into internal.maintenance_jobs (kind, trigger) values (:kind, :trigger) "
                           "returning id", {"kind": kind, "trigger": trigger}).scalar())


def start_job(uow: UnitOfWork, job_id: str) -> bool:
    """Mark a job running; False when it already finished (a redelivered message must not run it twice).
    A job left `running` by a crashed worker may start again: the advisory lock keeps runs apart."""
    return uow.execute(
        "update internal.maintenance_jobs set state = 'running', started_at = now() "
        "where id = :id and state in ('queued', 'running') returning id", {"id": job_id}).first() is not None


def fail_interrupted_jobs(uow: UnitOfWork, current_job_id: str, kind: str = KIND_CLEANUP) -> int:
    """Jobs still `running` while we hold the lock were interrupted (their worker died); say so."""
    return uow.execute(
        "update internal.maintenance_jobs set state = 'failed', detail = 'interrupted: its worker stopped', "
        "finished_at = now() where kind = :kind and state = 'running' and id <> :id",
        {"kind": kind, "id": current_job_id}).rowcount


def finish_job(uow: UnitOfWork, job_id: str, state: str, counts: dict[str, Any] | None = None,
               detail: str | None = None) -> None:
    assert state in FINAL_JOB_STATES
    uow.execute("update internal.maintenance_jobs set state = :state, counts = cast(:counts as jsonb), "
                "detail = :detail, finished_at = now() where id = :id",
                {"id": job_id, "state": state, "counts": json.dumps(counts or {}), "detail": detail})


def get_job(uow: UnitOfWork, job_id: str) -> dict[str, Any] | None:
    row = uow.execute("select id, kind, trigger, state, counts, detail, requested_at, started_at, finished_at "
                      "from internal.maintenance_jobs where id = :id", {"id": job_id}).mappings().first()
    if row is None:
        return None
    job = dict(row)
    job["id"] = str(job["id"])
    for key in ("requested_at", "started_at", "finished_at"):
        job[key] = job[key].isoformat() if job[key] else None
    return job


# --- reconciliation -------------------------------------------------------------------------------------
def time_out_stuck_results(engine: Engine, timeout_seconds: int, batch_size: int,
                           dispatch_on: bool = False) -> list[str]:
    """Move results in pending/processing without progress for `timeout_seconds` to `error` with
    metadata.error = "timeout", in batches. The status change goes through the pipeline's transition trigger
    like any other, which releases the reservation (nothing is charged for an `error`). With `dispatch_on`
    (DISPATCH_MODE push or pull) the clock of a dispatched job starts at its first delivery or lease, and a job
    still waiting in the dispatch queue is left to the queue timeout."""
    timed_out: list[str] = []
    while True:
        with unit_of_work(engine, Caller.service()) as uow:
            ids = [str(i) for i in uow.execute(
                TIME_OUT_STUCK_RESULTS,
                {"timeout": timeout_seconds, "batch": batch_size, "dispatch_on": dispatch_on}).scalars()]
        timed_out.extend(ids)
        if len(ids) < batch_size:
            return timed_out


def inbox_reason(uow: UnitOfWork, event_id: str) -> str | None:
    return uow.execute(f"select reason from {INBOX_TABLE} where id = :id", {"id": event_id}).scalar()


# --- pipeline health ------------------------------------------------------------------------------------
def pipeline_lag(uow: UnitOfWork) -> dict[str, Any]:
    """Age in seconds of the oldest unapplied inbox event and of the oldest unsent outbox event (0 when none),
    and how many of each are waiting. Both reads use the partial indexes on unfinished rows."""
    outbox = uow.execute(
        "select extract(epoch from now() - (select captured_at from internal.realtime_outbox "
        "where sent_at is null order by id limit 1)) as age, "
        "(select count(*) from internal.realtime_outbox where sent_at is null) as waiting").one()
    lag: dict[str, Any] = {
        "outbox_oldest_unsent_seconds": round(float(outbox.age or 0), 3),
        "outbox_unsent": int(outbox.waiting),
    }
    inbox = uow.execute(
        f"select extract(epoch from now() - (select received_at from {INBOX_TABLE} where state = 'received' "
        f"order by received_at limit 1)) as age, "
        f"(select count(*) from {INBOX_TABLE} where state = 'received') as waiting").one()
    lag["inbox_oldest_unapplied_seconds"] = round(float(inbox.age or 0), 3)
    lag["inbox_unapplied"] = int(inbox.waiting)
    return lag
