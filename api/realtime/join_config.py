"""A join's `config` beyond `postgres_changes`: broadcast (`self`, `ack`, `replay`), presence (`enabled`, `key`),
`private`, and the recovery point of postgres_changes. Shapes as realtime-js, realtime-py and realtime_client send
them and Supabase Realtime reads them (`lib/realtime_web/channels/payloads/*.ex` in supabase/realtime): booleans
may come as "true"/"false" strings; a wrong type is a join error naming the key. Pure functions."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from api.realtime.protocol import ProtocolError

REPLAY_DEFAULT_LIMIT = 10
REPLAY_MAX_LIMIT = 25  # Supabase's
REPLAY_INVALID = "UnableToReplayMessages: Replay params are not valid"
REPLAY_PUBLIC = "UnableToReplayMessages: Replay is not allowed for public channels"


@dataclass(frozen=True)
class Replay:
    since: datetime
    limit: int


@dataclass(frozen=True)
class JoinConfig:
    private: bool = False
    broadcast_self: bool = False
    broadcast_ack: bool = False
    presence_enabled: bool = False
    presence_key: str = ""
    replay: Replay | None = None
    changes_since: datetime | None = None  # postgres_changes recovery: replay what changed since then


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ProtocolError(f"{where} must be a boolean")


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"config.{key} must be an object")
    return value


def parse_instant(value: Any, where: str) -> datetime:
    """A point in time as the clients can send one: unix milliseconds (a number or digits) or an ISO 8601
    timestamp (naive means UTC)."""
    if isinstance(value, bool):
        raise ProtocolError(f"{where} must be unix milliseconds or an ISO 8601 timestamp")
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        try:
            return datetime.fromtimestamp(float(value) / 1000, tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise ProtocolError(f"{where} is out of range") from exc
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ProtocolError(f"{where} must be unix milliseconds or an ISO 8601 timestamp") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise ProtocolError(f"{where} must be unix milliseconds or an ISO 8601 timestamp")


def _replay(broadcast: dict[str, Any], private: bool) -> Replay | None:
    raw = broadcast.get("replay")
    if raw is None:
        return None
    if not private:
        raise ProtocolError(REPLAY_PUBLIC)
    if not isinstance(raw, dict):
        raise ProtocolError(REPLAY_INVALID)
    limit = raw.get("limit", REPLAY_DEFAULT_LIMIT)
    if limit is None:
        limit = REPLAY_DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ProtocolError(REPLAY_INVALID)
    try:
        since = parse_instant(raw.get("since") or 0, "config.broadcast.replay.since")
    except ProtocolError as exc:
        raise ProtocolError(REPLAY_INVALID) from exc
    return Replay(since, max(1, min(limit, REPLAY_MAX_LIMIT)))


def changes_since(config: dict[str, Any]) -> datetime | None:
    """Where postgres_changes recovery starts. The official clients pass different parts of `config` through
    unchanged, so any of these is read (the earliest wins): a binding's own `since` (supabase-js passes each
    `.on('postgres_changes', {...})` filter object as is), `config.postgres_changes_options.since` (supabase-js),
    and `config.broadcast.postgres_changes_since` (supabase-py 2.34 sends only `broadcast`, `presence`,
    `private` and its bindings, and passes the `broadcast` object as is)."""
    found: list[datetime] = []
    bindings = config.get("postgres_changes")
    if isinstance(bindings, list):
        for index, raw in enumerate(bindings):
            if isinstance(raw, dict) and raw.get("since") not in (None, ""):
                found.append(parse_instant(raw["since"], f"postgres_changes[{index}].since"))
    options = _section(config, "postgres_changes_options")
    if options.get("since") not in (None, ""):
        found.append(parse_instant(options["since"], "config.postgres_changes_options.since"))
    broadcast = _section(config, "broadcast")
    if broadcast.get("postgres_changes_since") not in (None, ""):
        found.append(parse_instant(broadcast["postgres_changes_since"], "config.broadcast.postgres_changes_since"))
    return min(found) if found else None


def parse(config: dict[str, Any]) -> JoinConfig:
    private = _flag(config.get("private"), "config.private")
    broadcast = _section(config, "broadcast")
    presence = _section(config, "presence")
    key = presence.get("key")
    if key is not None and not isinstance(key, str):
        raise ProtocolError("config.presence.key must be a string")
    return JoinConfig(
        private=private,
        broadcast_self=_flag(broadcast.get("self"), "config.broadcast.self"),
        broadcast_ack=_flag(broadcast.get("ack"), "config.broadcast.ack"),
        presence_enabled=_flag(presence.get("enabled"), "config.presence.enabled"),
        presence_key=key or str(uuid.uuid1()),  # Supabase generates one per join when none is given
        replay=_replay(broadcast, private),
        changes_since=changes_since(config),
    )
