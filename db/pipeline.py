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
class InboxEvent:
    """One validated webhook, as the API stores it."""

    idempotency_key: str
    webhook_id: str | None
    result_id: str
    event_status: str
    payload: str


def store_inbox_events(*, uow: UnitOfWork, events: list[InboxEvent]) -> list[StoredEvent]:
    """Store several events in one statement (the API's group commit); the answer for each is the one
    `store_inbox_event` would give it alone, in the order given.

    A key repeated within `events` is stored once: its first occurrence is the new event, the others duplicates of
    it. `received_at` is each row's own clock, in the order given, so events of one group keep their arrival
    order. Keys already stored (or being stored by a concurrent transaction, which ON CONFLICT waits for) are
    looked up in a second statement, whose fresh READ COMMITTED snapshot sees them."""
    first: dict[str, InboxEvent] = {}
    for event in events:
        first.setdefault(event.idempotency_key, event)
    fresh = list(first.values())
    inserted = dict(uow.execute(
        "insert into internal.webhook_inbox (idempotency_key, webhook_id, result_id, event_status, payload, "
        "                                    received_at) "
        "select e.key, e.webhook_id, e.result_id, e.event_status, cast(e.payload as jsonb), clock_timestamp() "
        "  from unnest(cast(:keys as text[]), cast(:webhook_ids as text[]), cast(:result_ids as uuid[]), "
        "              cast(:statuses as text[]), cast(:payloads as text[])) "
        "       with ordinality as e(key, webhook_id, result_id, event_status, payload, n) "
        " order by e.n "
        "on conflict (idempotency_key) do nothing returning idempotency_key, id",
        {"keys": [e.idempotency_key for e in fresh], "webhook_ids": [e.webhook_id for e in fresh],
         "result_ids": [e.result_id for e in fresh], "statuses": [e.event_status for e in fresh],
         "payloads": [e.payload for e in fresh]},
    ).all())
    missing = [key for key in first if key not in inserted]
    existing = dict(uow.execute("select idempotency_key, id from internal.webhook_inbox "
                                "where idempotency_key = any(cast(:keys as text[]))", {"keys": missing}).all()
                    ) if missing else {}
    answered: set[str] = set()
    stored = []
    for event in events:
        key = event.idempotency_key
        if key in inserted and key not in answered:
            stored.append(StoredEvent(str(inserted[key]), duplicate=False))
        else:
            stored.append(StoredEvent(str(inserted.get(key) or existing[key]), duplicate=True))
        answered.add(key)
    return stored


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


@dataclass(frozen=True)
class ClaimedEvent:
    event_id: str
    claimed: bool  # its first delivery, counted now: apply it
    state: str  # received | applied | duplicate | ignored | rejected | missing (as the claim found it)


def claim_events(*, uow: UnitOfWork, event_ids: list[str], max_events: int) -> list[ClaimedEvent]:
    """Count the first delivery of each never-attempted received event of a group, and of other never-attempted
    events up to `max_events` in all (commit before applying). The group's ids come first."""
    rows = uow.execute("select id, claimed, state from internal.claim_webhook_events(cast(:ids as uuid[]), :max)",
                       {"ids": event_ids, "max": max_events}).all()
    return [ClaimedEvent(str(row.id), row.claimed, row.state) for row in rows]


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
