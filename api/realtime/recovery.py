"""Replays on join, sent before any live frame of the channel (live frames are held meanwhile, and a live copy
of something replayed is skipped):

- Broadcast Replay (private channels, `config.broadcast.replay: {since, limit}`, as Supabase Realtime's
  `lib/realtime/messages.ex::replay`): the topic's stored broadcasts, oldest first, with
  `meta: {id, replayed: true}`.
- postgres_changes recovery (`since`, see api/realtime/join_config.py): the outbox rows of the channel's tables
  captured since then (bounded by REALTIME_RECOVERY_MAX_AGE_SECONDS and REALTIME_RECOVERY_MAX_CHANGES), each
  authorised exactly like a live change, as the caller at replay time (owner routing: the owner's; RLS: evaluated
  as the caller; DELETE as Supabase documents it). At least once: a change may arrive twice across reconnects.
"""
from __future__ import annotations

import logging
from datetime import datetime

from api.realtime import fanout, protocol
from api.realtime.channels import Channel
from api.realtime.join_config import Replay
from db import realtime as realtime_db
from db.outbox import change_event
from observability.metrics import WS_FRAMES

log = logging.getLogger("segbase.realtime")


def stored_broadcasts(hub, channel: Channel, replay: Replay) -> list:
    """The stored broadcasts to replay (read before the join is answered: a failure is a join error)."""
    return realtime_db.recent_broadcasts(hub.engine, channel.sub_topic, replay.since, replay.limit)


def send_broadcasts(channel: Channel, rows: list) -> int:
    """Channel pushes (with the join_ref), oldest first, marked replayed."""
    for row in rows:
        channel.replayed.add(("broadcast", row.id))
        envelope = {"type": "broadcast", "event": row.event, "payload": row.payload,
                    "meta": {"id": row.id, "replayed": True}}
        channel.subscriber.push(protocol.encode(channel.subscriber.vsn, channel.topic, "broadcast", envelope, None,
                                                channel.join_ref))
    if rows:
        WS_FRAMES.labels("broadcast").inc(len(rows))
    return len(rows)


def replay_changes(hub, channel: Channel, since: datetime) -> int:
    settings = hub.settings
    tables = sorted({(binding.schema, table) for binding in channel.bindings for table in binding.tables})
    rows = realtime_db.recent_changes(hub.engine, tables, since, settings.realtime_recovery_max_age_seconds,
                                      settings.realtime_recovery_max_changes)
    sent = 0
    for row in rows:
        shape = hub.catalog.shape(row.schema_name, row.table_name)
        if shape is None:
            continue
        change = change_event(row, shape)
        if change.routing == "owner" and channel.caller.role != "service_role" and channel.owner != change.owner:
            continue
        sent += fanout.push(change, fanout.select(change, [channel], hub.visible_to), replay=True)
    return sent
