"""cleanup-old-results in the database: tier retention, never in-flight results, bounded batches, SKIP LOCKED,
the lock against two runs, realtime DELETE events, and pruning of finished inbox and sent outbox rows."""
from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from db import jobs
from db.cleanup import CleanupBusy, cleanup_lock
from db.uow import Caller, unit_of_work
from db.urls import libpq_url
from tests.support.ops import existing, insert_result
from workers.maintenance import CleanupCounts, run_cleanup

DAY = timedelta(days=1)


def run(engine, batch_size: int = 2) -> CleanupCounts:
    with cleanup_lock(engine):
        return run_cleanup(engine, batch_size=batch_size, inbox_retention_days=30,
                                       outbox_retention_hours=24)


def test_deletes_finished_results_past_their_tier_retention_only(engine, owner_conn, tiered_users):
    free, pro, enterprise = (tiered_users[t].id for t in ("free", "pro", "enterprise"))
    doomed = [
        insert_result(owner_conn, free, "done", 8 * DAY),
        insert_result(owner_conn, free, "error", 8 * DAY),
        insert_result(owner_conn, free, "done", 400 * DAY),
        insert_result(owner_conn, pro, "done", 31 * DAY),
        insert_result(owner_conn, enterprise, "error", 91 * DAY),
    ]
    kept = [
        insert_result(owner_conn, free, "done", 6 * DAY),
        insert_result(owner_conn, free, "pending", 100 * DAY, updated_age=timedelta(0)),
        insert_result(owner_conn, free, "processing", 100 * DAY, updated_age=timedelta(0)),
        insert_result(owner_conn, pro, "done", 20 * DAY),
        insert_result(owner_conn, pro, "error", 29 * DAY),
        insert_result(owner_conn, enterprise, "done", 89 * DAY),
        insert_result(owner_conn, enterprise, "done", 31 * DAY),
    ]
    before_outbox = owner_conn.execute("select coalesce(max(id), 0) from internal.realtime_outbox").fetchone()[0]

    counts = run(engine, batch_size=2)

    assert existing(owner_conn, doomed) == set()
    assert existing(owner_conn, kept) == set(kept)
    assert counts.results >= len(doomed)
    assert counts.transactions >= 3  # 5 rows in batches of 2, plus the inbox and outbox passes
    # Each deletion is an ordinary DELETE: the capture trigger queued one realtime event for its owner.
    events = owner_conn.execute(
        "select pk ->> 'id', owner_id::text from internal.realtime_outbox "
        "where id > %s and op = 'DELETE' and table_name = 'segmentation_results'", (before_outbox,)).fetchall()
    owners = dict(events)
    assert set(doomed) <= set(owners)
    assert owners[doomed[3]] == pro and owners[doomed[4]] == enterprise


def test_a_locked_row_is_skipped_not_waited_for(engine, owner_conn, settings, tiered_users):
    free = tiered_users["free"].id
    locked = insert_result(owner_conn, free, "done", 30 * DAY)
    free_rows = [insert_result(owner_conn, free, "done", 30 * DAY) for _ in range(3)]
    with psycopg.connect(libpq_url(settings.database_url)) as other:
        other.execute("select 1 from public.segmentation_results where id = %s for update", (locked,))
        run(engine, batch_size=2)  # would block here without SKIP LOCKED
        assert existing(owner_conn, free_rows) == set()
        assert existing(owner_conn, [locked]) == {locked}
        other.rollback()
    run(engine)
    assert existing(owner_conn, [locked]) == set()


def test_a_second_run_is_refused_while_the_first_holds_the_lock(engine):
    with cleanup_lock(engine):
        with pytest.raises(CleanupBusy):
            with cleanup_lock(engine):
                pass
    with cleanup_lock(engine):  # released: the next run goes ahead
        pass


def _inbox_row(conn, state: str, received_age: timedelta, finished_age: timedelta | None) -> str:
    return str(conn.execute(
        "insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload, state, reason, "
        "received_at, finished_at) values (%s, %s, 'done', %s, %s, %s, now() - %s::interval, now() - %s::interval) "
        "returning id",
        (f"test:{uuid.uuid4()}", str(uuid.uuid4()), Jsonb({}), state,
         None if state in ("received", "applied") else "test", received_age, finished_age)).fetchone()[0])


def test_prunes_finished_inbox_rows_and_sent_outbox_rows_past_retention(engine, owner_conn):
    old_final = [_inbox_row(owner_conn, state, 40 * DAY, 31 * DAY) for state in ("applied", "rejected", "ignored")]
    recent_final = _inbox_row(owner_conn, "applied", 40 * DAY, 29 * DAY)
    unfinished = _inbox_row(owner_conn, "received", 400 * DAY, None)
    outbox = {}
    for name, sent_age in (("old_sent", timedelta(hours=25)), ("recent_sent", timedelta(hours=23)),
                           ("unsent", None)):
        outbox[name] = owner_conn.execute(
            "insert into internal.realtime_outbox (schema_name, table_name, op, pk, captured_at, sent_at) "
            "values ('public', 'segmentation_results', 'DELETE', '{}', now() - interval '30 days', "
            "now() - %s::interval) returning id", (sent_age,)).fetchone()[0]

    counts = run(engine, batch_size=2)

    inbox_left = {row[0] for row in owner_conn.execute(
        "select id::text from internal.webhook_inbox where id = any(%s::uuid[])",
        (old_final + [recent_final, unfinished],))}
    assert inbox_left == {recent_final, unfinished}
    assert counts.inbox >= 3
    # Leave no forever-unapplied event behind for the session's lag figures.
    owner_conn.execute("update internal.webhook_inbox set state = 'rejected', reason = 'test row', finished_at = now() "
                       "where id = %s", (unfinished,))
    outbox_left = {row[0] for row in owner_conn.execute(
        "select id from internal.realtime_outbox where id = any(%s)", (list(outbox.values()),))}
    assert outbox_left == {outbox["recent_sent"], outbox["unsent"]}
    owner_conn.execute("update internal.realtime_outbox set sent_at = now() where id = %s", (outbox["unsent"],))
    assert counts.outbox >= 1


def test_job_records_move_queued_running_done_once(engine):
    with unit_of_work(engine, Caller.service()) as uow:
        job_id = jobs.create_job(uow, "request")
        assert jobs.get_job(uow, job_id)["state"] == "queued"
        assert jobs.start_job(uow, job_id)
        jobs.finish_job(uow, job_id, "done", {"results": 3})
        # A redelivered message for a finished job does not run it again.
        assert not jobs.start_job(uow, job_id)
        job = jobs.get_job(uow, job_id)
    assert job["state"] == "done" and job["counts"] == {"results": 3} and job["finished_at"]
