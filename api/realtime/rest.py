"""/realtime/v1/api/broadcast — Broadcast over HTTP, as the clients send it (`httpSend` in realtime-js and
realtime-py, the batch form realtime-js falls back to when a channel is not joined; Supabase Realtime's
`BroadcastController`): `POST /api/broadcast` with `{"messages":[{topic, event, payload, private}]}` and
`POST /api/broadcast/<topic>/events/<event>[?private=true]` with the payload as the body. Both answer 202.

Each message is a realtime.messages row (written in one transaction; private ones as the caller, so RLS's insert
policy decides), delivered by the relay after commit: a 202 means durable, and private ones can be replayed.
Errors are `{"error": ..., "message": ...}`, the fields the clients show."""
from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, jsonify, request

from api.identity import TokenError, credentials_from_request, resolve_caller
from api.services import services
from db.errors import is_unavailable
from db.realtime import BroadcastRefused, send_messages

log = logging.getLogger("segbase.realtime")

bp = Blueprint("realtime_rest", __name__)

MAX_MESSAGES = 100


class BroadcastHttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@bp.errorhandler(BroadcastHttpError)
def _error(exc: BroadcastHttpError):
    return jsonify(error=exc.message, message=exc.message), exc.status


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BroadcastHttpError(400, f"{where} must be a non-empty string")
    if value.startswith("realtime:"):  # the clients send the sub-topic; accept a full topic too
        value = value[len("realtime:"):]
    return value


def _flag(value: Any, where: str) -> bool:
    if value in (None, False, "false"):
        return False
    if value in (True, "true"):
        return True
    raise BroadcastHttpError(400, f"{where} must be a boolean")


def _send(messages: list[dict[str, Any]]):
    svc = services()
    apikey, bearer = credentials_from_request(request)
    try:
        caller = resolve_caller(apikey=apikey, bearer=bearer, settings=svc.settings, engine=svc.engine)
    except TokenError as exc:
        raise BroadcastHttpError(401 if exc.kind == "missing_apikey" else 403, exc.message) from exc
    limit = svc.settings.realtime_max_message_bytes
    for message in messages:
        if len(json.dumps(message["payload"])) > limit:
            raise BroadcastHttpError(413, f"a broadcast payload may be at most {limit} bytes")
    try:
        send_messages(svc.engine, caller, messages)
    except BroadcastRefused as exc:
        raise BroadcastHttpError(403, "Unauthorized: You do not have permissions to write to this Channel topic: "
                                      f"{exc.topic}") from exc
    except Exception as exc:
        if is_unavailable(exc):
            raise BroadcastHttpError(503, "the database is unavailable; retry later") from exc
        raise
    return "", 202


@bp.post("/api/broadcast")
def broadcast_batch():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise BroadcastHttpError(400, 'the body must be {"messages": [{"topic", "event", "payload", "private"}]}')
    raw = body["messages"]
    if not 1 <= len(raw) <= MAX_MESSAGES:
        raise BroadcastHttpError(400, f"messages must hold 1 to {MAX_MESSAGES} entries")
    messages = []
    for index, item in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise BroadcastHttpError(400, f"{where} must be an object")
        messages.append({"topic": _text(item.get("topic"), f"{where}.topic"),
                         "event": _text(item.get("event"), f"{where}.event"),
                         "payload": item.get("payload", {}),
                         "private": _flag(item.get("private"), f"{where}.private")})
    return _send(messages)


@bp.post("/api/broadcast/<path:topic>/events/<event>")
def broadcast_one(topic: str, event: str):
    if request.mimetype == "application/octet-stream":
        raise BroadcastHttpError(415, "binary broadcast payloads are not supported by segbase; send JSON")
    payload = request.get_json(silent=True)
    if payload is None and request.get_data():
        raise BroadcastHttpError(400, "the body must be the payload as JSON")
    return _send([{"topic": _text(topic, "topic"), "event": _text(event, "event"), "payload": payload,
                   "private": _flag(request.args.get("private"), "private")}])
