"""Capture in PostgreSQL: one outbox row per committed change, none for a rollback, and the relay never skips a
row that committed after a higher id was already sent."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import text

from db.uow import Caller, unit_of_work
from db.urls import libpq_url
from tests.support.processes import wait_for
from tests.support.realtime import insert_result


def outbox_rows(conn, pk_id: str):
    return conn.execute("select op, owner_id::text, pk, record, sent_at from internal.realtime_outbox "
                        "where pk->>'id' = %s order by id", (pk_id,)).fetchall()


def test_every_published_table_has_the_capture_trigger(owner_conn):
    missing = owner_conn.execute("""
        select p.schemaname || '.' || p.tablename from pg_publication_tables p
         where p.pubname = 'supabase_realtime' and not exists (
               select from pg_trigger t join pg_class c on c.oid = t.tgrelid
                 join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = p.schemaname and c.relname = p.tablename and t.tgname = 'realtime_capture'
                  and not t.tgisinternal)""").fetchall()
    assert missing == []
    tables = {r[0] for r in owner_conn.execute(
        "select tablename from pg_publication_tables where pubname = 'supabase_realtime'")}
    assert {"segmentation_results", "users_profile"} <= tables


def test_insert_update_delete_are_captured_with_owner_and_key(settings, owner_conn, user):
    result_id = insert_result(settings, user.id)
    with owner_conn.transaction():
        owner_conn.execute("set local role service_role")
        owner_conn.execute("update public.segmentation_results set metadata = '{\"a\":1}' where id = %s", (result_id,))
        owner_conn.execute("delete from public.segmentation_results where id = %s", (result_id,))
    rows = outbox_rows(owner_conn, result_id)
    assert [r[0] for r in rows] == ["INSERT", "UPDATE", "DELETE"]
    assert all(r[1] == user.id and r[2] == {"id": result_id} for r in rows)
    assert rows[0][3]["text_prompt"] == "a cat" and rows[1][3]["metadata"] == {"a": 1} and rows[2][3] is None


def test_rolled_back_transaction_leaves_no_event(settings, owner_conn, user):
    result_id = str(uuid.uuid4())
    with pytest.raises(RuntimeError):
        with owner_conn.transaction():
            owner_conn.execute("insert into public.segmentation_results (id, user_id, source_image_url) "
                               "values (%s, %s, 'https://example.com/a.png')", (result_id, user.id))
            raise RuntimeError("roll back")
    assert outbox_rows(owner_conn, result_id) == []


def test_data_api_writes_by_a_user_are_captured(settings, engine, owner_conn, user):
    """The trigger is security definer: an authenticated writer needs no privilege on internal.*."""
    result_id = str(uuid.uuid4())
    caller = Caller("authenticated", {"sub": user.id, "role": "authenticated", "aud": "authenticated"})
    with unit_of_work(engine, caller) as uow:
        uow.execute(text("insert into public.segmentation_results (id, user_id, source_image_url) "
                         "values (cast(:id as uuid), cast(:user as uuid), 'https://example.com/a.png')"),
                    {"id": result_id, "user": user.id})
    assert [r[0] for r in outbox_rows(owner_conn, result_id)] == ["INSERT"]
    with pytest.raises(Exception):
        with unit_of_work(engine, caller) as uow:
            uow.execute(text("select count(*) from internal.realtime_outbox"))


def test_a_row_committed_late_with_a_lower_id_is_still_published(settings, relay, owner_conn, user, other_user):
    """Transaction A takes outbox id N, B takes N+1 and commits first; the relay sends N+1, then N once A
    commits — a max-id cursor would skip N forever."""
    late_id, early_id = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(libpq_url(settings.database_url)) as slow:
        slow.execute("insert into public.segmentation_results (id, user_id, source_image_url) "
                     "values (%s, %s, 'https://example.com/a.png')", (late_id, user.id))
        insert_result(settings, other_user.id, prompt=early_id)  # another user: no lock shared with `slow`
        early = owner_conn.execute("select id from internal.realtime_outbox where record->>'text_prompt' = %s",
                                   (early_id,)).fetchone()[0]
        wait_for(lambda: owner_conn.execute("select sent_at from internal.realtime_outbox where id = %s",
                                            (early,)).fetchone()[0], message="early row sent")
        slow.commit()
    late = outbox_rows(owner_conn, late_id)
    assert len(late) == 1
    wait_for(lambda: outbox_rows(owner_conn, late_id)[0][4], message="late row sent")
    late_outbox_id = owner_conn.execute("select id from internal.realtime_outbox where pk->>'id' = %s",
                                        (late_id,)).fetchone()[0]
    assert late_outbox_id < early


def test_events_of_one_row_keep_commit_order(settings, owner_conn, user):
    result_id = insert_result(settings, user.id)
    for n in range(5):
        with owner_conn.transaction():
            owner_conn.execute("update public.segmentation_results set metadata = %s where id = %s",
                               (f'{{"n": {n}}}', result_id))
    rows = outbox_rows(owner_conn, result_id)
    assert [r[3]["metadata"].get("n") for r in rows[1:]] == [0, 1, 2, 3, 4]
