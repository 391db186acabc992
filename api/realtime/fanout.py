"""The fan-out: one change to the matching channels of this process, as frames on their sockets' queues.

The hot path: `data` is serialized once per change and role (columns a role may not SELECT are stripped), then
each matching channel gets a frame assembled around it; a failure for one subscriber is logged and never stops
delivery to the rest."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from api.realtime import protocol
from api.realtime.channels import Channel
from observability.metrics import WS_FRAMES
from schemas.realtime import ChangeEvent

log = logging.getLogger("segbase.realtime")


def deliver(change: ChangeEvent, recipients: Iterable[Channel]) -> int:
    """Queue `change` on every recipient channel whose bindings match it; returns frames queued."""
    types = {column["name"]: column["type"] for column in change.columns}
    serialized: dict[str, str] = {}
    queued = 0
    for channel in recipients:
        try:
            ids = [b.id for b in channel.bindings if b.matches(change, types)]
            if not ids:
                continue
            role = channel.caller.role
            data = serialized.get(role)
            if data is None:
                hidden = [] if role == "service_role" else change.hidden.get(role, [])
                data = serialized[role] = protocol.change_data(change, hidden)
            subscriber = channel.subscriber
            if subscriber.push(protocol.change_frame(subscriber.vsn, channel.topic, ids, data)):
                channel.delivered += 1
                queued += 1
        except Exception:
            log.exception("realtime delivery to one channel failed")
    if queued:
        WS_FRAMES.labels(change.type).inc(queued)
    return queued
