"""Group commit: concurrent process-webhook requests share one inbox transaction and one Celery message, each is
answered only after that transaction committed, each gets the answer it would get alone (new, duplicate, its own
error), and the worker applies a group's events together — with the guarantees of one event per delivery: exactly
one effect, attempts counted, an event that failed before (a redelivered group) applied alone.

The writer runs in-process here (real PostgreSQL and Redis, real threads), under a namespace of its own so the
Celery messages it sends can be read back; the last test goes through a live API and worker."""
from __future__ import annotations

import concurrent.futures
import json
import threading
import uuid

import httpx
import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from api.functions.inbox_writer import InboxWriter
from broker.celery_app import create_celery
from broker.tasks import APPLY_WEBHOOK_EVENT_TASK, APPLY_WEBHOOK_EVENTS_TASK
from db.engine import create_app_engine
from db.errors import CONNECTION_ERRORS
from db.pipeline import InboxEvent, StoredEvent
from schemas.settings import Settings
from tests.support.database import make_test_settings
from tests.support.factories import create_user
from tests.support.pipeline import (
    MASK_URL,
    event_body,
    figures,
    post_event,
    queued_tasks,
    submit_results,
    wait_until_final,
)
from workers.main import create_worker_celery


@pytest.fixture
def own(settings: Settings) -> Settings:
    """The session's database under an INSTANCE_ID of the test's own: its Celery queue is read, never consumed."""
    return make_test_settings(settings.database_url, f"{settings.instance_id}g{uuid.uuid4().hex[:6]}")


def done_event(result_id: str, key: str | None = None, payload: str | None = None) -> InboxEvent:
    return InboxEvent(idempotency_key=key or f"test:{uuid.uuid4()}", webhook_id=None, result_id=result_id,
                      event_status="done", payload=payload or json.dumps({"mask_url": MASK_URL}))


def writer_for(own: Settings, engine, **kwargs) -> InboxWriter:
    values = dict(max_events=50, window_seconds=5.0, message_size=50)
    values.update(kwargs)
    return InboxWriter(engine, create_celery(own), **values)


def store_published(own: Settings, writer: InboxWriter, events: list[InboxEvent]) -> list[str]:
    """Store `events` (each its own group when the writer's max_events is 1) and return their ids once the writer's
    publisher has queued every one of them: it publishes after answering, from a loop of its own, so a test that
    counts the messages a task sends must not start counting before these arrive."""
    ids = [writer.store(event).event_id for event in events]
    for _ in range(200):
        published = {event_id for name, args in queued_tasks(own) if name == APPLY_WEBHOOK_EVENTS_TASK
                     for event_id in args[0]}
        if published >= set(ids):
            return ids
        threading.Event().wait(0.05)
    raise AssertionError(f"the writer never queued {sorted(set(ids) - published)}")


def store_concurrently(writer: InboxWriter, events: list[InboxEvent], db: psycopg.Connection
                       ) -> list[StoredEvent | BaseException]:
    """Each event from its own thread; each thread checks, the moment it is answered, that its row is committed
    (visible to another connection)."""
    visible: dict[int, bool] = {}
    lock = threading.Lock()
    owner_url = db.info.dsn

    def one(n: int) -> StoredEvent | BaseException:
        try:
            stored = writer.store(events[n])
        except Exception as exc:  # noqa: BLE001 — the test inspects it
            return exc
        with psycopg.connect(owner_url) as other:
            seen = other.execute("select count(*) from internal.webhook_inbox where id = %s",
                                 (stored.event_id,)).fetchone()[0] == 1
        with lock:
            visible[n] = seen
        return stored

    with concurrent.futures.ThreadPoolExecutor(len(events)) as pool:
        answers = list(pool.map(one, range(len(events))))
    assert all(visible.values()), visible
    return answers


def test_concurrent_requests_share_one_transaction_and_one_message(own, engine, db) -> None:
    user = create_user(own, credits=10)
    results = submit_results(engine, user, 6)
    already = done_event(results[5], key=f"test:already:{uuid.uuid4()}")
    first = writer_for(own, engine, max_events=1)
    before = first.store(already)
    twice = done_event(results[0], key=f"test:twice:{uuid.uuid4()}")
    events = [twice, *(done_event(r) for r in results[1:5]), twice, already]

    answers = store_concurrently(writer_for(own, engine, max_events=len(events)), events, db)

    assert all(isinstance(a, StoredEvent) for a in answers), answers
    by_key: dict[str, list[StoredEvent]] = {}
    for event, answer in zip(events, answers):
        by_key.setdefault(event.idempotency_key, []).append(answer)
    # The key sent twice: stored once, one request told 202 (new), the other 200 duplicate, same id.
    assert sorted(a.duplicate for a in by_key[twice.idempotency_key]) == [False, True]
    assert len({a.event_id for a in by_key[twice.idempotency_key]}) == 1
    assert by_key[already.idempotency_key] == [StoredEvent(before.event_id, duplicate=True)]
    new_ids = [a.event_id for a in answers if not a.duplicate]
    assert len(new_ids) == 5
    # One transaction: the five rows share their inserting transaction id.
    assert db.execute("select count(distinct xmin::text) from internal.webhook_inbox where id = any(%s::uuid[])",
                      (new_ids,)).fetchone()[0] == 1
    # One message for the group (after the lone first event's), with exactly the new ids.
    wait = [t for t in queued_tasks(own) if t[1] != [[before.event_id]]]
    for _ in range(100):
        if wait:
            break
        threading.Event().wait(0.05)
        wait = [t for t in queued_tasks(own) if t[1] != [[before.event_id]]]
    assert [(name, sorted(args[0])) for name, args in wait] == [(APPLY_WEBHOOK_EVENTS_TASK, sorted(new_ids))]


def test_a_bad_event_fails_alone_and_the_rest_of_its_group_is_stored(own, engine, db) -> None:
    user = create_user(own, credits=10)
    results = submit_results(engine, user, 3)
    events = [done_event(results[0]), done_event(results[1], payload="{not json"), done_event(results[2])]
    answers = store_concurrently(writer_for(own, engine, max_events=3), events, db)
    assert isinstance(answers[1], sa_exc.DataError)
    assert [a.duplicate for a in (answers[0], answers[2])] == [False, False]


def test_an_unreachable_database_fails_every_request_of_the_group_with_a_503_error(own, db) -> None:
    down = make_test_settings(own.database_url.replace(":5432/", ":1/"), own.instance_id)
    engine = create_app_engine(down, pool_size=1)
    try:
        answers = store_concurrently(writer_for(own, engine, max_events=3),
                                     [done_event(str(uuid.uuid4())) for _ in range(3)], db)
    finally:
        engine.dispose()
    assert all(isinstance(a, CONNECTION_ERRORS) for a in answers), answers
    assert queued_tasks(own) == []


def group_task(own: Settings, batch_size: int):
    """The worker's group task; `batch_size` (INBOX_BATCH_SIZE) = the group's size leaves no room for other
    never-attempted events of the session's database to join it."""
    return create_worker_celery(own.model_copy(update={"inbox_batch_size": batch_size})).tasks[
        APPLY_WEBHOOK_EVENTS_TASK]


def test_a_group_is_applied_together_and_its_redelivery_changes_nothing(own, engine, db) -> None:
    user = create_user(own, credits=3)
    first, second = submit_results(engine, user, 2)
    writer = writer_for(own, engine, max_events=1)
    events = store_published(own, writer, [done_event(first), done_event(second),
                                           done_event(str(uuid.uuid4()))])  # an unknown result: rejected
    task = group_task(own, len(events))
    assert task(events) == {"applied": 2, "rejected": 1}
    rows = dict(db.execute("select id::text, (state, attempts)::text from internal.webhook_inbox "
                           "where id = any(%s::uuid[])", (events,)).fetchall())
    assert rows == {events[0]: "(applied,1)", events[1]: "(applied,1)", events[2]: "(rejected,1)"}
    assert len({row[0] for row in db.execute("select xmin::text from internal.webhook_inbox "
                                             "where id = any(%s::uuid[])", (events,)).fetchall()}) == 1
    queued_before = len(queued_tasks(own))
    # A redelivery: every event of the group is final; none is claimed or re-queued (the room left in the group
    # may take other never-attempted events of the database, which is what the next test is about).
    assert "requeued" not in task(events)
    assert len(queued_tasks(own)) == queued_before
    assert dict(db.execute("select id::text, (state, attempts)::text from internal.webhook_inbox "
                           "where id = any(%s::uuid[])", (events,)).fetchall()) == rows
    final = figures(db, [first, second])
    assert (final.done, final.charges, final.double_charged) == (2, 2, 0)


def test_events_attempted_before_go_back_one_per_message_and_are_not_applied_here(own, engine, db) -> None:
    user = create_user(own, credits=3)
    results = submit_results(engine, user, 3)
    writer = writer_for(own, engine, max_events=1)
    events = store_published(own, writer, [done_event(r) for r in results])
    # The worker died after claiming the first two (their attempt is counted) and before applying them.
    db.execute("update internal.webhook_inbox set attempts = 1 where id = any(%s::uuid[])", (events[:2],))
    queued_before = queued_tasks(own)
    assert group_task(own, 1)(events + ["not-a-uuid"]) == {"applied": 1, "requeued": 2}
    sent = queued_tasks(own)[len(queued_before):]
    assert sorted(sent) == sorted([(APPLY_WEBHOOK_EVENT_TASK, [events[0]]), (APPLY_WEBHOOK_EVENT_TASK, [events[1]])])
    single = create_worker_celery(own).tasks[APPLY_WEBHOOK_EVENT_TASK]
    assert [single(events[0]), single(events[1])] == ["applied", "applied"]
    rows = dict(db.execute("select id::text, attempts from internal.webhook_inbox where id = any(%s::uuid[])",
                           (events,)).fetchall())
    assert rows == {events[0]: 2, events[1]: 2, events[2]: 1}
    final = figures(db, results)
    assert (final.done, final.charges, final.double_charged) == (3, 3, 0)


def test_a_poison_event_fails_alone_and_goes_back_to_be_ended_by_the_attempts_counter(own, engine, db) -> None:
    user = create_user(own, credits=5)
    results = submit_results(engine, user, 3)
    writer = writer_for(own, engine, max_events=1)
    events = store_published(own, writer, [done_event(r) for r in results])
    poison_result, poison = results[1], events[1]
    trigger = f"test_poison_{uuid.uuid4().hex[:12]}"
    db.execute(f"create function internal.{trigger}() returns trigger language plpgsql as "
               f"$$ begin perform 1 / 0; return new; end $$")
    db.execute(f"create trigger {trigger} before update on public.segmentation_results for each row "
               f"when (old.id = '{poison_result}'::uuid) execute function internal.{trigger}()")
    try:
        queued_before = len(queued_tasks(own))
        assert group_task(own, len(events))(events) == {"applied": 2, "requeued": 1}
        assert queued_tasks(own)[queued_before:] == [(APPLY_WEBHOOK_EVENT_TASK, [poison])]
        single = create_worker_celery(own).tasks[APPLY_WEBHOOK_EVENT_TASK]
        for _ in range(own.inbox_max_attempts - 1):
            with pytest.raises(sa_exc.DataError):
                single(poison)
        assert single(poison) == "rejected"
    finally:
        db.execute(f"drop trigger if exists {trigger} on public.segmentation_results")
        db.execute(f"drop function if exists internal.{trigger}()")
    final = figures(db, results)
    assert (final.done, final.charges, final.double_charged) == (2, 2, 0)
    assert final.states == {"applied": 2, "rejected": 1}


def test_events_whose_message_never_came_join_the_next_group(own, engine, db) -> None:
    user = create_user(own, credits=3)
    results = submit_results(engine, user, 3)
    writer = writer_for(own, engine, max_events=1)
    events = [writer.store(done_event(r)).event_id for r in results]
    # The first two events' message was lost (a worker killed while receiving it); they are the oldest waiting.
    db.execute("update internal.webhook_inbox set received_at = timestamptz '2000-01-01' + "
               "(case when id = %s then 0 else 1 end) * interval '1 second' where id = any(%s::uuid[])",
               (events[0], events[:2]))
    assert group_task(own, 3)([events[2]]) == {"applied": 3}
    assert [state for state, in db.execute("select state from internal.webhook_inbox where id = any(%s::uuid[])",
                                            (events,)).fetchall()] == ["applied"] * 3
    # Their own message, should it come after all, finds them final: nothing claimed or re-queued of theirs.
    assert "requeued" not in group_task(own, 2)(events[:2])
    assert db.execute("select sum(attempts) from internal.webhook_inbox where id = any(%s::uuid[])",
                      (events,)).fetchone()[0] == 3
    final = figures(db, results)
    assert (final.done, final.charges, final.double_charged) == (3, 3, 0)


def test_concurrent_posts_through_the_api_are_each_applied_once(settings, engine, db, api_server,
                                                               pipeline_worker) -> None:
    user = create_user(settings, credits=40)
    results = submit_results(engine, user, 30)
    bodies = [event_body(r) for r in results] + [event_body(r) for r in results[:10]]  # 10 repeats

    def post(body: dict) -> tuple[int, str]:
        with httpx.Client(timeout=30) as client:
            response = post_event(client, api_server.url, body)
        return response.status_code, response.json()["event_id"]

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, bodies))
    assert sorted({code for code, _ in answers}) in ([202], [200, 202])
    assert sum(code == 202 for code, _ in answers) == 30  # one 202 per distinct event, the repeats 200
    final = wait_until_final(db, results)
    assert (final.done, final.charges, final.double_charged) == (30, 30, 0)
