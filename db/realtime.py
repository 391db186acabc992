"""Realtime's database work beyond the publication's catalog: which subscribers' RLS lets them see a changed row,
what a private channel's caller may read and write (RLS on realtime.messages), and broadcasts sent over REST."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from db.uow import Caller, unit_of_work


def visible_to(engine: Engine, schema: str, table: str, pk: dict[str, Any], callers: list[Caller]) -> set[int]:
    """Positions in `callers` of those whose RLS lets them SELECT the row with primary key `pk`: one round trip
    (internal.realtime_visible_to switches role and claims per caller, as Supabase's realtime.apply_rls)."""
    identities = json.dumps([{"role": caller.role, "claims": caller.claims} for caller in callers])
    with unit_of_work(engine, Caller.service()) as uow:
        positions = uow.execute(
            "select internal.realtime_visible_to(format('%I.%I', cast(:schema as text), cast(:table as text))::regclass, "
            "cast(:pk as jsonb), cast(:callers as jsonb))",
            {"schema": schema, "table": table, "pk": json.dumps(pk), "callers": identities}).scalar()
    return set(positions or ())


class _Probe(Exception):
    """Raised to roll back a transaction that only asked a question."""


EXTENSIONS = ("broadcast", "presence")


def channel_access(engine: Engine, caller: Caller, topic: str) -> tuple[frozenset[str], frozenset[str]]:
    """(readable, writable) extensions of a private channel's topic for `caller`, decided by RLS on
    realtime.messages as Supabase Realtime does (`lib/realtime/tenants/authorization.ex`): one probe row per
    extension is inserted as service_role, selected as the caller with `realtime.topic` set (read), then inserted
    as the caller under a savepoint (write); everything is rolled back. One transaction."""
    readable: set[str] = set()
    writable: set[str] = set()
    try:
        with unit_of_work(engine, Caller.service()) as uow:
            uow.execute("select set_config('realtime.topic', :topic, true)", {"topic": topic})
            probes = {}
            for extension in EXTENSIONS:
                probes[extension] = uow.execute(
                    "insert into realtime.messages (topic, extension, event, private) "
                    "values (:topic, :extension, 'segbase_probe', true) returning id::text",
                    {"topic": topic, "extension": extension}).scalar()
            uow.become(caller)
            visible = set(uow.execute("select id::text from realtime.messages where id = any(cast(:ids as uuid[]))",
                                      {"ids": list(probes.values())}).scalars())
            readable = {extension for extension, probe in probes.items() if probe in visible}
            for extension in EXTENSIONS:
                uow.execute(f"savepoint write_{extension}")
                try:
                    uow.execute("insert into realtime.messages (topic, extension, event, private) "
                                "values (:topic, :extension, 'segbase_probe', true)",
                                {"topic": topic, "extension": extension})
                    writable.add(extension)
                except DBAPIError as exc:
                    if not _is_refusal(exc):
                        raise
                uow.execute(f"rollback to savepoint write_{extension}")
            raise _Probe
    except _Probe:
        pass
    return frozenset(readable), frozenset(writable)


def _is_refusal(exc: DBAPIError) -> bool:
    """An RLS or privilege refusal (42501), as opposed to the database failing."""
    return getattr(exc.orig, "sqlstate", None) == "42501"


class BroadcastRefused(Exception):
    """The caller may not send to a private topic (RLS on realtime.messages refused the insert)."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.topic = topic


def send_messages(engine: Engine, caller: Caller, messages: list[dict[str, Any]]) -> list[str]:
    """Insert broadcasts ({topic, event, payload, private}) into realtime.messages in one transaction: public
    ones as service_role, private ones as the caller, so RLS's insert policy decides (BroadcastRefused, nothing
    written). The relay delivers them after commit. Returns the new ids."""
    ids: list[str] = []
    with unit_of_work(engine, Caller.service()) as uow:
        acting = Caller.service()
        for message in messages:
            wanted = caller if message["private"] else Caller.service()
            if wanted != acting:
                uow.become(wanted)
                acting = wanted
            uow.execute("select set_config('realtime.topic', :topic, true)", {"topic": message["topic"]})
            try:
                ids.append(uow.execute(
                    "insert into realtime.messages (topic, extension, event, payload, private) "
                    "values (:topic, 'broadcast', :event, cast(:payload as jsonb), :private) returning id::text",
                    {"topic": message["topic"], "event": message["event"],
                     "payload": json.dumps(message["payload"]), "private": message["private"]}).scalar())
            except DBAPIError as exc:
                if _is_refusal(exc):
                    raise BroadcastRefused(message["topic"]) from exc
                raise
    return ids


def recent_broadcasts(engine: Engine, topic: str, since: datetime, limit: int) -> list[Any]:
    """Broadcast Replay: the newest `limit` private broadcasts of `topic` since `since` (and not dated more than a
    minute ahead, as Supabase), oldest first. realtime.messages.inserted_at is a timestamp in the session's time
    zone (its default is now()), so `since` is converted the same way."""
    with unit_of_work(engine, Caller.service()) as uow:
        rows = uow.execute(
            "select id::text as id, event, payload from realtime.messages "
            "where topic = :topic and private and extension = 'broadcast' "
            "and inserted_at >= cast(cast(:since as timestamptz) as timestamp) "
            "and inserted_at < localtimestamp + interval '1 minute' "
            "order by inserted_at desc limit :limit",
            {"topic": topic, "since": since, "limit": limit}).all()
    return list(reversed(rows))


def recent_changes(engine: Engine, tables: list[tuple[str, str]], since: datetime, max_age_seconds: int,
                   limit: int) -> list[Any]:
    """postgres_changes recovery: outbox rows of `tables` captured since `since` (at most `max_age_seconds` ago),
    the newest `limit` of them, oldest first (sent or not: a row not yet sent arrives live too, with the same id,
    and the join skips that copy)."""
    if not tables:
        return []
    with unit_of_work(engine, Caller.service()) as uow:
        rows = uow.execute(
            "select id, schema_name, table_name, op, owner_id, pk, record, captured_at "
            "from internal.realtime_outbox "
            "where (schema_name, table_name) in (select * from unnest(cast(:schemas as text[]), cast(:names as text[]))) "
            "and captured_at >= greatest(cast(:since as timestamptz), now() - make_interval(secs => :age)) "
            "order by id desc limit :limit",
            {"schemas": [schema for schema, _ in tables], "names": [name for _, name in tables], "since": since,
             "age": max_age_seconds, "limit": limit}).all()
    return list(reversed(rows))
