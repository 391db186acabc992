"""Triggers (update_updated_at, handle_new_user) and the cascades of the original specification's foreign keys."""
from __future__ import annotations

import uuid

import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import text

from db.uow import Caller
from tests.support.db import World, as_service, new_result, rolled_back, user_caller
from tests.support.factories import create_user

TIMESTAMPED = {
    "users_profile": ("update public.users_profile set display_name = 'touched' where id = :id", "owner"),
    "projects": ("update public.projects set name = 'touched' where id = :id", "owner"),
    "segmentation_results": ("update public.segmentation_results set project_id = null where id = :id", "owner"),
}


@pytest.mark.parametrize("table", list(TIMESTAMPED))
def test_update_sets_updated_at(engine, world: World, table: str) -> None:
    statement, _ = TIMESTAMPED[table]
    row_id = {"users_profile": world.owner.id, "projects": world.owner_project,
              "segmentation_results": world.done_result}[table]

    def probe(uow):
        before = uow.execute(text(f"select created_at, updated_at from public.{table} where id = :id"),
                             {"id": row_id}).one()
        uow.execute(statement, {"id": row_id})
        after = uow.execute(text(f"select created_at, updated_at, now() as now from public.{table} where id = :id"),
                            {"id": row_id}).one()
        return before, after

    before, after = rolled_back(engine, user_caller(world.owner.id), probe)
    assert after.created_at == before.created_at
    assert after.updated_at == after.now > before.updated_at


def test_updated_at_cannot_be_forged_even_by_service_role(engine, world: World) -> None:
    def probe(uow):
        uow.execute("update public.projects set updated_at = '2000-01-01' where id = :id", {"id": world.other_project})
        return uow.execute("select updated_at = now() from public.projects where id = :id",
                           {"id": world.other_project}).scalar()

    assert rolled_back(engine, Caller.service(), probe) is True


def test_every_table_with_updated_at_has_the_shared_trigger(owner_conn) -> None:
    missing = owner_conn.execute("""
        select c.relname from pg_class c
        join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
        join pg_attribute a on a.attrelid = c.oid and a.attname = 'updated_at' and not a.attisdropped
        where c.relkind in ('r', 'p') and not exists (
          select from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal
            and t.tgfoid = 'public.update_updated_at()'::regprocedure
            and t.tgtype & 2 = 2 and t.tgtype & 16 = 16)  -- BEFORE, UPDATE
    """).fetchall()
    assert missing == []


def sign_up_as_auth_admin(engine, user_id: str, metadata: dict) -> tuple:
    """Insert an auth user the way /auth/v1 does (authenticator → supabase_auth_admin), then read the profile."""
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(text("select set_config('role', 'supabase_auth_admin', true)"))
        conn.execute(text(
            "insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, "
            "updated_at) values (:id, 'authenticated', 'authenticated', :email, '{}', :meta, now(), now())"),
            {"id": user_id, "email": f"signup-{user_id[:8]}@example.com", "meta": Jsonb(metadata)})
        conn.execute(text("select set_config('role', 'service_role', true)"))
        profile = conn.execute(text("select display_name, tier, credits from public.users_profile where id = :id"),
                               {"id": user_id}).one()
        tx.rollback()
    return tuple(profile)


def test_sign_up_creates_the_profile_with_starting_credits(settings, engine) -> None:
    """handle_new_user is SECURITY DEFINER: supabase_auth_admin has no privilege on public.users_profile."""
    profile = sign_up_as_auth_admin(engine, str(uuid.uuid4()), {"display_name": "Ada", "tier": "enterprise"})
    assert profile == ("Ada", "free", settings.starting_credits_free)


def test_starting_credits_come_from_the_config_table(owner_conn) -> None:
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("update internal.config set value = to_jsonb(3) where key = 'starting_credits_free'")
        user_id = str(uuid.uuid4())
        owner_conn.execute("insert into auth.users (id, aud, role, email, created_at, updated_at) "
                           "values (%s, 'authenticated', 'authenticated', %s, now(), now())",
                           (user_id, f"cfg-{user_id[:8]}@example.com"))
        credits = owner_conn.execute("select credits from public.users_profile where id = %s", (user_id,)).fetchone()[0]
    assert credits == 3


def test_migrate_writes_the_config_from_settings(settings, owner_conn) -> None:
    config = dict(owner_conn.execute("select key, value from internal.config").fetchall())
    assert config["starting_credits_free"] == settings.starting_credits_free
    assert config["starting_credits_pro"] == settings.starting_credits_pro
    assert config["starting_credits_enterprise"] == settings.starting_credits_enterprise
    assert config["credits_per_segmentation"] == settings.credits_per_segmentation


def test_deleting_a_user_removes_their_rows(settings, engine) -> None:
    user = create_user(settings, credits=10)
    project = as_service(engine, "insert into public.projects (user_id, name) values (:u, 'p') returning id",
                         {"u": user.id})[0][0]
    new_result(engine, user.id, str(project), path=("processing", "done"))
    new_result(engine, user.id, str(project), path=("processing",))
    new_result(engine, user.id, None)
    as_service(engine, "insert into public.usage_logs (user_id, action, credits_used) values (:u, 'upload', 0)",
               {"u": user.id})

    with engine.connect() as conn, conn.begin():
        conn.execute(text("select set_config('role', 'supabase_auth_admin', true)"))
        assert conn.execute(text("delete from auth.users where id = :id"), {"id": user.id}).rowcount == 1

    counts = as_service(engine, """
        select (select count(*) from public.users_profile where id = :u),
               (select count(*) from public.projects where user_id = :u),
               (select count(*) from public.segmentation_results where user_id = :u),
               (select count(*) from public.usage_logs where user_id = :u)""", {"u": user.id})[0]
    assert tuple(counts) == (0, 0, 0, 0)


def test_deleting_a_project_keeps_its_results_unfiled(engine, world: World) -> None:
    """Results in every status survive their project's deletion with project_id null."""
    results = [world.done_result, world.error_result, world.pending_result, world.processing_result]

    def probe(uow):
        assert uow.execute("delete from public.projects where id = :p", {"p": world.owner_project}).rowcount == 1
        return uow.execute("select id, project_id from public.segmentation_results where id = any(:ids)",
                           {"ids": results}).fetchall()

    rows = rolled_back(engine, user_caller(world.owner.id), probe)
    assert sorted(str(r.id) for r in rows) == sorted(results)
    assert {r.project_id for r in rows} == {None}
