"""The realtime outbox (internal.realtime_outbox): reading unsent rows, marking them sent, and the published shape.

The capture trigger (migration 20261124004000) writes one row per committed change; the relay turns each into
the JSON message API processes fan out. Everything here runs in a unit of work as `service_role`.
"""
from __future__ import annotations

from datetime import timezone
from typing import Any

from db.publication import TableShape
from db.uow import UnitOfWork
from schemas.realtime import BroadcastEvent, ChangeEvent

NOTIFY_CHANNEL = "segbase_realtime_outbox"
# pg_advisory_lock key of the active relay; advisory locks are per database, so one relay per deployment.
RELAY_LOCK_KEY = 0x5E6BA5E_0E
# Outbox rows of this table are broadcasts (realtime.send() and REST sends), not postgres_changes.
MESSAGES_TABLE = ("realtime", "messages")


def format_commit_timestamp(value) -> str:
    """Realtime's `commit_timestamp`: UTC, millisecond precision, `Z`."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def read_unsent(uow: UnitOfWork, limit: int) -> list[Any]:
    """Unsent rows in id order. Rows are found by `sent_at is null`, never by an id cursor, so a row whose
    transaction committed after a higher id was sent is still picked up on the next read."""
    return uow.execute(
        "select id, schema_name, table_name, op, owner_id, pk, record, captured_at "
        "from internal.realtime_outbox where sent_at is null order by id limit :limit",
        {"limit": limit}).all()


def mark_sent(uow: UnitOfWork, ids: list[int]) -> None:
    uow.execute("update internal.realtime_outbox set sent_at = now() where id = any(:ids)", {"ids": ids})


def prune_sent(uow: UnitOfWork, retention_hours: int, batch: int = 5000) -> int:
    """Delete sent rows older than the retention (kept meanwhile for inspection and replay by hand)."""
    result = uow.execute(
        "delete from internal.realtime_outbox where id in (select id from internal.realtime_outbox "
        "where sent_at < now() - make_interval(hours => :hours) limit :batch)",
        {"hours": retention_hours, "batch": batch})
    return result.rowcount


def change_event(row: Any, shape: TableShape) -> ChangeEvent:
    """The message published on Redis for one outbox row (one message = one change, fanned out by API processes)."""
    return ChangeEvent(
        id=row.id,
        schema_name=row.schema_name,
        table=row.table_name,
        type=row.op,
        owner=str(row.owner_id) if row.owner_id is not None else None,
        routing=shape.routing or "rls",
        commit_timestamp=format_commit_timestamp(row.captured_at),
        columns=shape.columns,
        hidden=shape.hidden,
        record=row.record,
        old_record=row.pk if row.op != "INSERT" else None,
    )


def is_broadcast(row: Any) -> bool:
    return (row.schema_name, row.table_name) == MESSAGES_TABLE


def broadcast_event(row: Any) -> BroadcastEvent:
    """The message published for a realtime.messages row: what Supabase Realtime sends for a database broadcast,
    `{type, event, payload, meta: {id}}`."""
    record = row.record or {}
    event = record.get("event") or ""
    return BroadcastEvent(topic=record.get("topic") or "", private=bool(record.get("private")), event=event,
                          envelope={"type": "broadcast", "event": event, "payload": record.get("payload"),
                                    "meta": {"id": record.get("id")}})


def prune_messages(uow: UnitOfWork, retention_hours: int) -> int:
    """Delete realtime.messages rows past their retention (Broadcast Replay reads what is left)."""
    return uow.execute("select internal.prune_realtime_messages(:hours)", {"hours": retention_hours}).scalar() or 0
