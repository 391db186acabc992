"""Authorization equals RLS: over many random rows, users and operations, the hub delivers a change to a
subscriber exactly when that subscriber could SELECT the row at that moment (for DELETE: just before it).

The messages are built from the real outbox rows by the relay's own code and routed by the real Hub, so a later
policy change that widens (or narrows) what a role can SELECT fails here instead of silently leaking events."""
from __future__ import annotations

import json
import random
import uuid

import psycopg
import pytest
from sqlalchemy import text

from api.realtime import bindings as realtime_bindings
from api.realtime.channels import Channel
from api.realtime.hub import Hub
from db.outbox import change_event
from db.publication import PublicationCatalog
from db.uow import Caller, unit_of_work
from db.urls import libpq_url
from tests.support.factories import create_user

SEED = 20261124
OPERATIONS = 80


class RecordingConnection:
    vsn = "1.0.0"

    def __init__(self) -> None:
        self.frames: list[dict] = []

    def push(self, frame: str) -> bool:
        self.frames.append(json.loads(frame))
        return True


def visible(engine, caller: Caller, table: str, pk: dict) -> bool:
    with unit_of_work(engine, caller) as uow:
        return uow.execute(text(f"select exists(select 1 from public.{table} where id = cast(:id as uuid))"),
                           {"id": pk["id"]}).scalar()


def last_outbox_id(conn: psycopg.Connection) -> int:
    return conn.execute("select coalesce(max(id), 0) from internal.realtime_outbox").fetchone()[0]


@pytest.mark.slow
def test_routing_decision_equals_select_under_rls(settings, engine):
    rng = random.Random(SEED)
    users = [create_user(settings, credits=100) for _ in range(5)]
    callers = [Caller("authenticated", {"sub": u.id, "role": "authenticated", "aud": "authenticated"}) for u in users]
    callers += [Caller.anonymous(), Caller.service()]
    hub = Hub(settings, engine)
    published = hub.published_tables()
    assert {"segmentation_results", "users_profile"} <= set(published["public"])
    subscribers = []
    for index, caller in enumerate(callers):
        conn = RecordingConnection()
        bindings = realtime_bindings.parse_bindings([{"event": "*", "schema": "public"}], published)
        hub.register(Channel(conn, f"realtime:s{index}", "1", bindings, caller, None))
        subscribers.append((caller, conn))

    results: list[str] = []
    checked = 0
    catalog = PublicationCatalog(engine)
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as owner:
        for _ in range(OPERATIONS):
            kind = rng.choice(["insert", "insert", "update", "reassign", "profile", "delete"])
            if kind != "insert" and not results:
                kind = "insert"
            target = rng.choice(results) if results and kind in ("update", "reassign", "delete") else None
            before = {}
            if kind == "delete":
                before = {id(c): visible(engine, c, "segmentation_results", {"id": target}) for c in callers}
            start = last_outbox_id(owner)
            try:
                with owner.transaction():
                    owner.execute("set local role service_role")
                    if kind == "insert":
                        new_id = str(uuid.uuid4())
                        owner.execute("insert into public.segmentation_results (id, user_id, source_image_url) "
                                      "values (%s, %s, 'https://example.com/x.png')", (new_id, rng.choice(users).id))
                        results.append(new_id)
                    elif kind == "update":
                        owner.execute("update public.segmentation_results set metadata = %s where id = %s",
                                      (json.dumps({"n": rng.random()}), target))
                    elif kind == "reassign":
                        owner.execute("update public.segmentation_results set user_id = %s where id = %s",
                                      (rng.choice(users).id, target))
                    elif kind == "profile":
                        owner.execute("update public.users_profile set display_name = %s where id = %s",
                                      (f"n{rng.random()}", rng.choice(users).id))
                    else:
                        owner.execute("delete from public.segmentation_results where id = %s", (target,))
                        results.remove(target)
            except psycopg.Error:
                continue  # another engineer's rule refused this change: nothing committed, nothing to route
            rows = owner.execute(
                "select id, schema_name, table_name, op, owner_id, pk, record, captured_at "
                "from internal.realtime_outbox where id > %s order by id", (start,)).fetchall()
            for row in rows:
                row_id, schema, table, op, owner_id, pk, record, captured_at = row
                for _, conn in subscribers:
                    conn.frames.clear()
                shape = catalog.shape(schema, table)
                message = change_event(_Row(row_id, schema, table, op, owner_id, pk, record, captured_at), shape).to_json()
                hub.dispatch(message)
                for caller, conn in subscribers:
                    expected = before[id(caller)] if op == "DELETE" else visible(engine, caller, table, pk)
                    assert bool(conn.frames) == expected, (kind, op, table, caller.role, caller.claims)
                    checked += 1
        owner.execute("delete from public.segmentation_results where id = any(%s::uuid[])", (results,))
    assert checked >= OPERATIONS * len(callers) * 0.8


class _Row:
    def __init__(self, id, schema_name, table_name, op, owner_id, pk, record, captured_at):
        self.id, self.schema_name, self.table_name, self.op = id, schema_name, table_name, op
        self.owner_id, self.pk, self.record, self.captured_at = owner_id, pk, record, captured_at
