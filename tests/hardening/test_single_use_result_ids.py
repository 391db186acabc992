"""A result id is single-use for the life of the database: once its result is deleted — by its owner, by the
cleanup job, by a cascade from its user, by TRUNCATE — inserting that id again is refused in PostgreSQL, through
the data API (409, PostgREST's shape), for any user and for service_role's plain SQL. Otherwise a completed (charged)
result could be deleted and its id submitted again, and every later completion would find "already charged"."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from db.cleanup import cleanup_lock
from db.urls import libpq_url
from tests.support.db import as_service, sqlstate
from tests.support.factories import create_user
from tests.support.ops import insert_result
from tests.support.pipeline import (
    MASK_URL,
    balances,
    event_body,
    post_event,
    wait_until_final,
)
from tests.support.processes import wait_for
from workers.maintenance import run_cleanup

SOURCE = "https://img.example/in.png"


@pytest.fixture(autouse=True)
def _worker(pipeline_worker):
    return pipeline_worker


def rest_insert(http, api_server, anon_key, user, result_id: str):
    return http.post(f"{api_server.url}/rest/v1/segmentation_results", headers=user.headers(anon_key),
                     json={"id": result_id, "user_id": user.id, "source_image_url": SOURCE, "text_prompt": "a cat"})


def charges(db, result_id: str) -> int:
    return db.execute("select count(*) from public.usage_logs where action = 'segmentation' "
                      "and metadata ->> 'result_id' = %s", (result_id,)).fetchone()[0]


def assert_refused_as_reused(response, result_id: str) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details", "hint"}
    assert body["code"] == "23505"
    assert result_id in body["message"] and "never used twice" in body["message"]


def service_insert(engine, result_id: str, user_id: str) -> None:
    as_service(engine, "insert into public.segmentation_results (id, user_id, source_image_url) "
                       "values (:id, :u, :src)", {"id": result_id, "u": user_id, "src": SOURCE})


def test_an_id_completed_by_webhook_and_deleted_through_the_data_api_cannot_come_back(
        settings, api_server, http, db, anon_key) -> None:
    user = create_user(settings, credits=5)
    result_id = str(uuid.uuid4())
    assert rest_insert(http, api_server, anon_key, user, result_id).status_code == 201
    assert post_event(http, api_server.url, event_body(result_id, "done")).status_code == 202
    assert wait_until_final(db, [result_id]).done == 1
    assert balances(db, [user]) == {user.id: 5 - settings.credits_per_segmentation}

    deleted = http.delete(f"{api_server.url}/rest/v1/segmentation_results", params={"id": f"eq.{result_id}"},
                          headers=user.headers(anon_key))
    assert deleted.status_code == 204, deleted.text
    again = rest_insert(http, api_server, anon_key, user, result_id)
    assert_refused_as_reused(again, result_id)
    upsert = http.post(f"{api_server.url}/rest/v1/segmentation_results", json={
        "id": result_id, "user_id": user.id, "source_image_url": SOURCE},
        headers={**user.headers(anon_key), "Prefer": "resolution=ignore-duplicates"})
    assert_refused_as_reused(upsert, result_id)

    assert db.execute("select count(*) from public.segmentation_results where id = %s",
                      (result_id,)).fetchone()[0] == 0
    assert charges(db, result_id) == 1
    assert balances(db, [user]) == {user.id: 5 - settings.credits_per_segmentation}


def test_another_user_cannot_take_a_deleted_id_either(settings, engine, api_server, http, db, anon_key) -> None:
    owner, other = create_user(settings, credits=5), create_user(settings, credits=5)
    result_id = str(uuid.uuid4())
    assert rest_insert(http, api_server, anon_key, owner, result_id).status_code == 201
    as_service(engine, "update public.segmentation_results set status = 'error' where id = :id", {"id": result_id})
    assert http.delete(f"{api_server.url}/rest/v1/segmentation_results", params={"id": f"eq.{result_id}"},
                       headers=owner.headers(anon_key)).status_code == 204
    assert_refused_as_reused(rest_insert(http, api_server, anon_key, other, result_id), result_id)


def test_service_role_sql_cannot_reinsert_a_deleted_id(settings, engine, db) -> None:
    user = create_user(settings, credits=5)
    result_id = str(uuid.uuid4())
    service_insert(engine, result_id, user.id)
    as_service(engine, "update public.segmentation_results set status = 'done', mask_image_url = :m where id = :id",
               {"m": MASK_URL, "id": result_id})
    as_service(engine, "delete from public.segmentation_results where id = :id", {"id": result_id})
    with pytest.raises(DBAPIError) as refused:
        service_insert(engine, result_id, user.id)
    assert sqlstate(refused.value) == "23505"
    # Inserting it directly as done (which charges on insert) is refused the same way: no second charge.
    with pytest.raises(DBAPIError):
        as_service(engine, "insert into public.segmentation_results (id, user_id, source_image_url, status, "
                           "mask_image_url) values (:id, :u, :src, 'done', :m)",
                   {"id": result_id, "u": user.id, "src": SOURCE, "m": MASK_URL})
    assert charges(db, result_id) == 1


def test_ids_deleted_by_cleanup_by_a_user_cascade_and_by_truncate_are_tombstoned(settings, engine, db) -> None:
    user = create_user(settings, credits=50)
    expired = insert_result(db, user.id, "done", timedelta(days=400))
    with cleanup_lock(engine):
        run_cleanup(engine, batch_size=100, inbox_retention_days=30, outbox_retention_hours=24)
    with pytest.raises(DBAPIError) as cleaned:
        service_insert(engine, expired, user.id)
    assert sqlstate(cleaned.value) == "23505"

    leaving = create_user(settings, credits=50)
    kept_by_cascade = [insert_result(db, leaving.id, status, timedelta(minutes=1)) for status in ("done", "pending")]
    db.execute("delete from auth.users where id = %s", (leaving.id,))
    tombstoned = db.execute("select count(*) from internal.deleted_result_ids where id = any(%s::uuid[])",
                            (kept_by_cascade,)).fetchone()[0]
    assert tombstoned == 2
    with pytest.raises(DBAPIError) as cascaded:
        service_insert(engine, kept_by_cascade[0], user.id)
    assert sqlstate(cascaded.value) == "23505"

    # TRUNCATE fires no delete trigger; its own trigger tombstones the ids (rolled back: the table is shared).
    live = insert_result(db, user.id, "pending", timedelta(minutes=1))
    with db.transaction(force_rollback=True):
        db.execute("truncate public.segmentation_results cascade")
        assert db.execute("select exists (select from internal.deleted_result_ids where id = %s)",
                          (live,)).fetchone()[0]


def test_a_result_id_never_changes(settings, engine) -> None:
    user = create_user(settings, credits=5)
    result_id = str(uuid.uuid4())
    service_insert(engine, result_id, user.id)
    with pytest.raises(DBAPIError) as refused:
        as_service(engine, "update public.segmentation_results set id = gen_random_uuid() where id = :id",
                   {"id": result_id})
    assert sqlstate(refused.value) == "PT409"
    assert refused.value.orig.diag.message_hint == "result_id_immutable"


def test_a_delete_racing_a_reinsert_of_the_same_id_still_refuses_it(settings, engine, db) -> None:
    """The insert waits on the primary key for the deleting transaction; the AFTER INSERT recheck then sees its
    tombstone."""
    user = create_user(settings, credits=5)
    result_id = str(uuid.uuid4())
    service_insert(engine, result_id, user.id)
    as_service(engine, "update public.segmentation_results set status = 'error' where id = :id", {"id": result_id})
    url = libpq_url(settings.database_url)
    with psycopg.connect(url) as deleter, psycopg.connect(url, autocommit=True) as inserter:
        deleter.execute("delete from public.segmentation_results where id = %s", (result_id,))
        inserter_pid = inserter.info.backend_pid
        outcome: dict = {}

        def reinsert() -> None:
            try:
                inserter.execute("insert into public.segmentation_results (id, user_id, source_image_url) "
                                 "values (%s, %s, %s)", (result_id, user.id, SOURCE))
                outcome["error"] = None
            except psycopg.Error as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=reinsert)
        thread.start()
        wait_for(lambda: db.execute("select wait_event_type = 'Lock' from pg_stat_activity where pid = %s",
                                    (inserter_pid,)).fetchone()[0], timeout=30,
                 message="the re-insert to wait on the deleting transaction")
        deleter.commit()
        thread.join(30)
    assert outcome["error"] is not None and outcome["error"].sqlstate == "23505"
