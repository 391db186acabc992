"""Supabase Realtime's Phoenix wire format: frames in and out (vsn 1.0.0 objects, 2.0.0 arrays), replies, system
messages, change payloads, close codes. As Phoenix's serializer in realtime-js (`src/lib/serializer.ts`) and
Realtime's `RealtimeWeb.RealtimeChannel` define them.

Pure functions only — no sockets, no database — so every rule the clients check is unit-tested against the
captured client frames in tests/realtime/vectors/.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from api.http import JsonInputError, check_json_value
from schemas.realtime import ChangeEvent

VSN_OBJECTS = "1.0.0"
VSN_ARRAYS = "2.0.0"
SUPPORTED_VSN = (VSN_OBJECTS, VSN_ARRAYS)
TOPIC_PREFIX = "realtime:"
# WebSocket close codes (RFC 6455 §7.4.1) the server sends.
CLOSE_GOING_AWAY = 1001  # shutdown, heartbeat timeout: the client reconnects
CLOSE_POLICY = 1008  # the server closed the socket for what the client did (e.g. it stopped reading)


class ProtocolError(ValueError):
    """A frame or join config the server cannot accept; `reason` is what the client is told."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameRefused(ProtocolError):
    """A well-formed frame holding a value segbase takes on no surface (nested deeper than MAX_JSON_DEPTH, a NUL or
    a lone surrogate in a string or key): `message` is the frame, so the client gets an error reply to it."""

    def __init__(self, reason: str, message: Message) -> None:
        super().__init__(reason)
        self.message = message


@dataclass(frozen=True)
class Message:
    topic: str
    event: str
    payload: dict[str, Any]
    ref: str | None
    join_ref: str | None


def decode(text: str | bytes, vsn: str, *, max_depth: int = 64) -> Message:
    """Parse one client frame: a JSON object (vsn 1.0.0) or a 5-element array (vsn 2.0.0), held to the JSON check
    every body is (api/http.py): FrameRefused names the field (counted from the frame: `payload.…` in vsn 1.0.0,
    `4.…` in 2.0.0)."""
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested past Python's limit
        raise ProtocolError("frame is not JSON") from exc
    if vsn == VSN_ARRAYS:
        if not isinstance(value, list) or len(value) < 5:
            raise ProtocolError("expected [join_ref, ref, topic, event, payload]")
        join_ref, ref, topic, event, payload = value[:5]
    else:
        if not isinstance(value, dict):
            raise ProtocolError("expected a JSON object frame")
        topic, event, payload = value.get("topic"), value.get("event"), value.get("payload")
        ref, join_ref = value.get("ref"), value.get("join_ref")
    if not isinstance(topic, str) or not isinstance(event, str):
        raise ProtocolError("topic and event must be strings")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise ProtocolError("payload must be an object")
    message = Message(topic, event, payload, _ref(ref), _ref(join_ref))
    try:
        check_json_value(value, max_depth=max_depth)
    except JsonInputError as exc:
        raise FrameRefused(exc.message, message) from exc
    return message


def _ref(value: Any) -> str | None:
    return None if value is None else str(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps(separators=...) builds one per call


def dumps(value: Any) -> str:
    """Compact JSON, as every frame is written."""
    return _ENCODER.encode(value)


def encode(vsn: str, topic: str, event: str, payload: Any, ref: str | None = None,
           join_ref: str | None = None) -> str:
    """A server frame. V1 carries only topic/event/payload/ref (ref always present, as realtime-py requires)."""
    if vsn == VSN_ARRAYS:
        return dumps([join_ref, ref, topic, event, payload])
    return dumps({"topic": topic, "event": event, "payload": payload, "ref": ref})


def reply(vsn: str, message: Message, status: str, response: dict[str, Any]) -> str:
    return encode(vsn, message.topic, "phx_reply", {"status": status, "response": response}, message.ref,
                  message.join_ref)


def change_frame(vsn: str, topic: str, ids: list[int], data_json: str) -> str:
    """A postgres_changes push, with `data` already serialized once per event and role (the hot path)."""
    payload = '{"ids":[' + ",".join(map(str, ids)) + '],"data":' + data_json + "}"
    if vsn == VSN_ARRAYS:
        return '[null,null,' + dumps(topic) + ',"postgres_changes",' + payload + "]"
    return '{"topic":' + dumps(topic) + ',"event":"postgres_changes","payload":' + payload + ',"ref":null}'


def system_payload(topic: str, status: str, message: str, extension: str = "postgres_changes") -> dict[str, str]:
    return {"extension": extension, "status": status, "message": message, "channel": sub_topic(topic)}


def sub_topic(topic: str) -> str:
    return topic[len(TOPIC_PREFIX):] if topic.startswith(TOPIC_PREFIX) else topic


def change_data(change: ChangeEvent, hidden: list[str]) -> str:
    """The serialized `data` of a postgres_changes push, without columns the subscriber's role cannot SELECT.
    INSERT has no `old_record`, DELETE no `record`; `old_record` carries the primary key only."""
    drop = set(hidden)
    columns = [c for c in change.columns if c["name"] not in drop] if drop else change.columns
    data: dict[str, Any] = {
        "schema": change.schema_name,
        "table": change.table,
        "commit_timestamp": change.commit_timestamp,
        "type": change.type,
        "columns": columns,
        "errors": None,
    }
    if change.type != "DELETE":
        record = change.record or {}
        data["record"] = {k: v for k, v in record.items() if k not in drop} if drop else record
    if change.type != "INSERT":
        data["old_record"] = change.old_record or {}
    return dumps(data)
