"""SQL-facing functions of the webhook pipeline. Each takes an open unit of work (`uow=`) and never commits: the
caller owns the transaction. The rules themselves (status machine, reservation, charge) live in PostgreSQL
(db/migrations/2026112400310*_*.sql), so these functions stay thin."""
from __future__ import annotations

from dataclasses import dataclass

from db.uow import UnitOfWork


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    duplicate: bool


@dataclass(frozen=True)
class CreditSummary:
    credits: int
    reserved: int
    tier: str
    cost_per_segmentation: int

    @property
    def available(self) -> int:
        return self.credits - self.reserved

    @property
    def can_submit(self) -> bool:
        return self.available >= self.cost_per_segmentation


def store_inbox_event(*, uow: UnitOfWork, idempotency_key: str, webhook_id: str | None, result_id: str,
                      event_status: str, payload: str) -> StoredEvent:
    """Insert the event unless its idempotency key is already stored; return its id and whether it was a repeat.

    A concurrent insert of the same key waits for the first and then finds its row (ON CONFLICT DO NOTHING + a
    fresh READ COMMITTED snapshot for the second statement)."""
    inserted = uow.execute(
        "insert into internal.webhook_inbox (idempotency_key, webhook_id, result_id, event_status, payload) "
        "values (:key, :webhook_id, :result_id, :event_status, cast(:payload as jsonb)) "
        "on conflict (idempotency_key) do nothing returning id",
        {"key": idempotency_key, "webhook_id": webhook_id, "result_id": result_id, "event_status": event_status,
         "payload": payload},
    ).scalar()
    if inserted is not None:
        return StoredEvent(str(inserted), duplicate=False)
    existing = uow.execute("select id from internal.webhook_inbox where idempotency_key = :key",
                           {"key": idempotency_key}).scalar_one()
    return StoredEvent(str(existing), duplicate=True)


@dataclass(frozen=True)
class BatchMember:
    event_id: str
    state: str  # received (apply it), or the final/missing state of the leader
    attempts: int
    is_leader: bool


@dataclass(frozen=True)
class BatchOutcome:
    event_id: str
    state: str  # applied | duplicate | ignored | rejected
    reason: str | None
    changed: bool  # False: the event was already final (another delivery applied it); nothing was done


def begin_batch(*, uow: UnitOfWork, event_id: str, max_attempts: int, max_events: int) -> list[BatchMember]:
    """Count one delivery of `event_id` and, on its first delivery, claim up to `max_events - 1` never-attempted
    received events with it (their attempt counted too). The leader comes first. Commit before applying."""
    rows = uow.execute("select id, state, attempts, is_leader "
                       "from internal.begin_webhook_batch(cast(:id as uuid), :max, :events)",
                       {"id": event_id, "max": max_attempts, "events": max_events}).all()
    members = [BatchMember(str(row.id), row.state, row.attempts, row.is_leader) for row in rows]
    return sorted(members, key=lambda member: not member.is_leader)


def apply_events(*, uow: UnitOfWork, event_ids: list[str]) -> list[BatchOutcome]:
    """Apply several events in the caller's transaction (one savepoint each for trigger refusals)."""
    rows = uow.execute("select id, state, reason, changed from internal.apply_webhook_events(cast(:ids as uuid[]))",
                       {"ids": event_ids}).all()
    return [BatchOutcome(str(row.id), row.state, row.reason, row.changed) for row in rows]


def claim_stale_events(*, uow: UnitOfWork, min_age_seconds: int, limit: int) -> list[str]:
    """Mark events not applied within `min_age_seconds` as re-queued now and return their ids (sweeper)."""
    rows = uow.execute("select id from internal.claim_stale_webhook_events(:age, :limit) as id",
                       {"age": min_age_seconds, "limit": limit}).scalars()
    return [str(event_id) for event_id in rows]


def credit_summary(*, uow: UnitOfWork, user_id: str) -> CreditSummary | None:
    """The user's balance, the credits reserved by their in-flight results, tier and the current price."""
    row = uow.execute(
        "select p.credits, p.tier::text as tier, "
        "       coalesce((select sum(r.price) from public.segmentation_results r "
        "                  where r.user_id = p.id and r.status in ('pending', 'processing')), 0) as reserved, "
        "       coalesce(internal.config_int('credits_per_segmentation'), 0) as cost "
        "from public.users_profile p where p.id = :user_id",
        {"user_id": user_id},
    ).one_or_none()
    if row is None:
        return None
    return CreditSummary(credits=row.credits, reserved=int(row.reserved), tier=row.tier,
                         cost_per_segmentation=int(row.cost))


def inbox_reason(uow: UnitOfWork, event_id: str) -> str | None:
    """Why an inbox event ended as it did (a rejection's reason), or None."""
    return uow.execute("select reason from internal.webhook_inbox where id = :id", {"id": event_id}).scalar()
