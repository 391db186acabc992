"""Broadcast: client → server → the topic's members, in every API process.

A client's push arrives as a text frame (supabase-py, vsn 1.0.0 objects; supabase-flutter, 2.0.0 arrays) or as
realtime-js's binary USER_BROADCAST_PUSH (kind 3, `lib/serializer.ts` in supabase/supabase-js); either becomes one
`schemas.realtime.BroadcastEvent` published on the Redis channel the relay uses, so every API process delivers it
to its members of the topic. Messages from the database (`realtime.send()`, `realtime.broadcast_changes()`, REST
sends, all rows of `realtime.messages`) come the same way from the relay after their transaction committed.

Members receive text frames (`[null,null,topic,"broadcast",envelope]` / the vsn 1.0.0 object), which every client
decodes; only a raw-bytes payload from realtime-js travels as the binary USER_BROADCAST (kind 4), to vsn 2.0.0
sockets only (a vsn 1.0.0 client cannot decode bytes: Supabase drops it for them too).
"""
from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from api.http import JsonInputError, check_json_value, parse_json
from api.realtime import protocol
from api.realtime.registry import ChannelRegistry
from observability.metrics import WS_FRAMES
from schemas.realtime import BroadcastEvent

log = logging.getLogger("segbase.realtime")

USER_BROADCAST_PUSH = 3
USER_BROADCAST = 4
ENCODING_BINARY = 0
ENCODING_JSON = 1


@dataclass(frozen=True)
class UserPush:
    """A decoded binary USER_BROADCAST_PUSH: the Phoenix message plus what it carries."""

    message: protocol.Message
    event: str
    metadata: dict[str, Any]
    encoding: int
    body: bytes


def decode_user_push(frame: bytes, *, max_depth: int = 64) -> UserPush:
    """realtime-js's binary broadcast: kind, five one-byte lengths, the encoding byte, then the strings and the
    user payload (the rest of the frame). The metadata JSON is held to the check every body is (api/http.py)."""
    if len(frame) < 7 or frame[0] != USER_BROADCAST_PUSH:
        raise protocol.ProtocolError("binary frames must be a user broadcast push (kind 3)")
    lengths = frame[1:6]
    encoding = frame[6]
    offset = 7
    parts: list[bytes] = []
    for length in lengths:
        parts.append(frame[offset:offset + length])
        offset += length
    if offset > len(frame):
        raise protocol.ProtocolError("binary broadcast frame is shorter than its header says")
    try:
        join_ref, ref, topic, event, meta_text = (part.decode() for part in parts)
        metadata = json.loads(meta_text) if meta_text else {}
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested past Python's limit
        raise protocol.ProtocolError("binary broadcast frame has an undecodable header") from exc
    try:
        check_json_value(metadata, max_depth=max_depth)
    except JsonInputError as exc:
        raise protocol.ProtocolError(f"binary broadcast metadata refused: {exc.message}") from exc
    if not isinstance(metadata, dict) or encoding not in (ENCODING_BINARY, ENCODING_JSON):
        raise protocol.ProtocolError("binary broadcast frame has invalid metadata or encoding")
    message = protocol.Message(topic, "broadcast", {}, ref or None, join_ref or None)
    return UserPush(message, event, metadata, encoding, frame[offset:])


def encode_user_broadcast(topic: str, event: str, body: bytes, meta: dict[str, Any] | None = None) -> bytes:
    """The binary USER_BROADCAST (kind 4) for a raw-bytes payload."""
    t, e = topic.encode(), event.encode()
    m = protocol.dumps(meta).encode() if meta else b""
    return bytes([USER_BROADCAST, len(t), len(e), len(m), ENCODING_BINARY]) + t + e + m + body


def event_from_text(payload: dict[str, Any], topic: str, private: bool) -> BroadcastEvent:
    """A text push: the payload object is relayed as received (supabase-flutter may send it flat, with `type`
    and `event` beside the app's keys), so every client reads what its sender wrote."""
    event = payload.get("event")
    if not isinstance(event, str) or not event:
        raise protocol.ProtocolError("broadcast payload needs a string `event`")
    return BroadcastEvent(topic=topic, private=private, event=event, envelope=payload)


def event_from_binary(push: UserPush, topic: str, private: bool, *, max_depth: int = 64) -> BroadcastEvent:
    if push.encoding == ENCODING_JSON:
        try:
            body = parse_json(push.body, max_depth=max_depth)
        except JsonInputError as exc:
            raise protocol.ProtocolError(f"binary broadcast payload refused: {exc.message}") from exc
        return BroadcastEvent(topic=topic, private=private, event=push.event,
                              envelope={"type": "broadcast", "event": push.event, "payload": body})
    return BroadcastEvent(topic=topic, private=private, event=push.event,
                          binary=base64.b64encode(push.body).decode())


def deliver(event: BroadcastEvent, registry: ChannelRegistry, process_id: str) -> int:
    """Queue one broadcast on every channel of its topic here that may read it; returns frames queued."""
    topic = protocol.TOPIC_PREFIX + event.topic
    body = base64.b64decode(event.binary) if event.binary is not None else None
    frames: dict[str, str | bytes | None] = {}
    queued = 0
    meta = (event.envelope or {}).get("meta")
    key = ("broadcast", meta.get("id")) if isinstance(meta, dict) and meta.get("id") else None
    for channel in registry.topic_channels(event.topic, event.private):
        if event.exclude is not None and event.exclude == (process_id, channel.serial):
            continue
        if event.private and "broadcast" not in channel.readable:
            continue
        subscriber = channel.subscriber
        vsn = subscriber.vsn
        if vsn not in frames:
            if body is not None:
                frames[vsn] = encode_user_broadcast(topic, event.event, body) if vsn == protocol.VSN_ARRAYS else None
            else:
                frames[vsn] = protocol.encode(vsn, topic, "broadcast", event.envelope)
        frame = frames[vsn]
        if frame is None:
            continue
        try:
            if channel.offer(frame, key):
                queued += 1
        except Exception:
            log.exception("realtime broadcast to one channel failed")
    if queued:
        WS_FRAMES.labels("broadcast").inc(queued)
    return queued
