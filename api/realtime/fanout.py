"""The fan-out: one change to the matching channels of this process, as frames on their sockets' queues.

Who may receive a change depends on its routing (decided by the relay from the table, docs/REALTIME.md):
`owner` — the owner's and service_role's channels (an index lookup, no database); `rls` — every channel bound to
the table whose caller's RLS lets them SELECT the row, evaluated in one database round trip for all distinct
callers (DELETE: every subscriber, with only the primary key, as Supabase documents); `all` — every channel whose
role may SELECT the table (RLS off). A role that may SELECT no column of the table never receives it.

The hot path: `data` is serialized once per change and role (columns a role may not SELECT are stripped), then
each matching channel gets a frame assembled around it; a failure for one subscriber is logged and never stops
delivery to the rest."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

from api.realtime import protocol
from api.realtime.channels import Channel
from api.realtime.registry import ChannelRegistry
from db.uow import Caller
from observability.metrics import WS_FRAMES, WS_RLS_CALLERS, WS_RLS_CHECKS
from schemas.realtime import ChangeEvent

log = logging.getLogger("segbase.realtime")

# (change, distinct callers) → positions of the callers whose RLS lets them SELECT the changed row.
VisibleTo = Callable[[ChangeEvent, list[Caller]], set[int]]


def deliver(change: ChangeEvent, registry: ChannelRegistry, visible_to: VisibleTo) -> int:
    """Queue `change` on every channel allowed to see it whose bindings match; returns frames queued."""
    if change.routing == "owner":
        candidates = registry.recipients(change.owner)
    else:
        candidates = registry.table_channels(change.schema_name, change.table)
    return push(change, select(change, candidates, visible_to))


def select(change: ChangeEvent, candidates: Iterable[Channel],
           visible_to: VisibleTo) -> list[tuple[Channel, list[int]]]:
    """The candidates allowed to see `change` whose bindings match it, with the matching binding ids."""
    types = {column["name"]: column["type"] for column in change.columns}
    matching: list[tuple[Channel, list[int]]] = []
    for channel in candidates:
        try:
            ids = [b.id for b in channel.bindings if b.matches(change, types)]
        except Exception:
            log.exception("realtime binding match failed for one channel")
            continue
        if ids and (channel.caller.role == "service_role" or may_select(change, channel.caller.role)):
            matching.append((channel, ids))
    if change.routing == "rls" and change.type != "DELETE":
        matching = _visible(change, matching, visible_to)
    return matching


def may_select(change: ChangeEvent, role: str) -> bool:
    """Whether `role` may SELECT any column of the changed table (column privileges, from the relay's catalog)."""
    return len(change.hidden.get(role, ())) < len(change.columns)


def _visible(change: ChangeEvent, matching: list[tuple[Channel, list[int]]],
             visible_to: VisibleTo) -> list[tuple[Channel, list[int]]]:
    """Keep service_role channels and those whose caller RLS lets see the row, asking once per distinct caller."""
    position: dict[tuple[str, str], int] = {}
    callers: list[Caller] = []
    asks: list[int | None] = []  # per matching channel: its caller's position, None for service_role
    for channel, _ in matching:
        if channel.caller.role == "service_role":
            asks.append(None)
            continue
        key = (channel.caller.role, json.dumps(channel.caller.claims, sort_keys=True))
        if key not in position:
            position[key] = len(callers)
            callers.append(channel.caller)
        asks.append(position[key])
    if not callers:
        return matching
    WS_RLS_CHECKS.inc()
    WS_RLS_CALLERS.inc(len(callers))
    try:
        seen = visible_to(change, callers)
    except Exception:  # the database is unavailable: nobody unverified receives it (at most once, documented)
        log.warning("realtime RLS evaluation failed; change %d not delivered to %d callers", change.id, len(callers),
                    exc_info=True)
        seen = set()
    return [entry for entry, ask in zip(matching, asks, strict=True) if ask is None or ask in seen]


def push(change: ChangeEvent, matching: Iterable[tuple[Channel, list[int]]], replay: bool = False) -> int:
    """Frames for the matching channels; `replay`: sent now, ahead of held live frames (a recovering join)."""
    serialized: dict[str, str] = {}
    queued = 0
    for channel, ids in matching:
        try:
            role = channel.caller.role
            data = serialized.get(role)
            if data is None:
                hidden = [] if role == "service_role" else change.hidden.get(role, [])
                data = serialized[role] = protocol.change_data(change, hidden)
            frame = protocol.change_frame(channel.subscriber.vsn, channel.topic, ids, data)
            if replay:
                channel.replayed.add(("change", change.id))
                sent = channel.subscriber.push(frame)
            else:
                sent = channel.offer(frame, ("change", change.id))
            if sent:
                channel.delivered += 1
                queued += 1
        except Exception:
            log.exception("realtime delivery to one channel failed")
    if queued:
        WS_FRAMES.labels(change.type).inc(queued)
    return queued
