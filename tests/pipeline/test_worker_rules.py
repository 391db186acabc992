"""The worker's rules without a broker: the attempts counter ends a poison event, a finished event is a no-op when
delivered again, two sweepers never claim the same event, transient errors are told apart, and every retry waits
less than the visibility timeout. The task runs in-process here (Celery's eager call), against real PostgreSQL."""
from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from broker.celery_app import max_retry_countdown
from broker.tasks import APPLY_WEBHOOK_EVENT_TASK
from db.errors import is_transient
from db.pipeline import begin_batch, claim_stale_events, store_inbox_event
from db.uow import Caller, unit_of_work
from tests.support.factories import create_user
from tests.support.pipeline import MASK_URL, figures, submit_results
from workers.main import create_worker_celery
from workers.tasks import retry_countdown


def store(engine, result_id: str, status: str = "done") -> str:
    payload = json.dumps({"mask_url": MASK_URL} if status == "done" else {})
    with unit_of_work(engine, Caller.service()) as uow:
        return store_inbox_event(uow=uow, idempotency_key=f"test:{uuid.uuid4()}", webhook_id=None,
                                 result_id=result_id, event_status=status, payload=payload).event_id


@pytest.fixture
def apply_task(settings):
    return create_worker_celery(settings).tasks[APPLY_WEBHOOK_EVENT_TASK]


def test_a_poison_event_is_rejected_after_max_attempts(settings, engine, db, apply_task) -> None:
    user = create_user(settings, credits=2)
    [result_id] = submit_results(engine, user, 1)
    event_id = store(engine, result_id)
    for attempt in range(1, settings.inbox_max_attempts + 1):
        with unit_of_work(engine, Caller.service()) as uow:
            assert begin_batch(uow=uow, event_id=event_id, max_attempts=settings.inbox_max_attempts,
                               max_events=1)[0].attempts \
                == attempt
    # Every attempt so far "crashed" before applying; the next delivery gives up instead of trying again.
    assert apply_task(event_id) == "rejected"
    state, reason = db.execute("select state, reason from internal.webhook_inbox where id = %s",
                               (event_id,)).fetchone()
    assert state == "rejected"
    assert reason == f"poison: gave up after {settings.inbox_max_attempts} attempts " \
                     f"(INBOX_MAX_ATTEMPTS={settings.inbox_max_attempts})"
    assert figures(db, [result_id]).charges == 0


def test_a_redelivered_finished_event_changes_nothing(settings, engine, db, apply_task) -> None:
    user = create_user(settings, credits=2)
    [result_id] = submit_results(engine, user, 1)
    event_id = store(engine, result_id)
    assert apply_task(event_id) == "applied"
    assert apply_task(event_id) == "applied"  # the recorded outcome, not a second application
    assert db.execute("select attempts from internal.webhook_inbox where id = %s", (event_id,)).fetchone() == (1,)
    assert figures(db, [result_id]).charges == 1
    assert apply_task(str(uuid.uuid4())) == "missing"
    assert apply_task("not-an-id") == "invalid"


def test_two_sweepers_never_claim_the_same_event(settings, engine, db) -> None:
    user = create_user(settings, credits=5)
    events = [store(engine, result_id) for result_id in submit_results(engine, user, 4)]
    db.execute("update internal.webhook_inbox set received_at = now() - interval '10 minutes' "
               "where id = any(%s::uuid[])", (events,))
    with unit_of_work(engine, Caller.service()) as first:
        claimed_first = claim_stale_events(uow=first, min_age_seconds=60, limit=2)
        with unit_of_work(engine, Caller.service()) as second:  # runs while the first holds its row locks
            claimed_second = claim_stale_events(uow=second, min_age_seconds=60, limit=100)
    mine = set(events)
    assert not set(claimed_first) & set(claimed_second)
    assert mine <= set(claimed_first) | set(claimed_second)
    with unit_of_work(engine, Caller.service()) as third:  # just re-queued: not stale again until the delay passes
        assert not mine & set(claim_stale_events(uow=third, min_age_seconds=60, limit=100))


def test_transient_database_errors_are_retried_and_others_are_not() -> None:
    def wrapped(sqlstate: str) -> sa_exc.DBAPIError:
        error = psycopg.errors.lookup(sqlstate)("boom")
        return sa_exc.DBAPIError("select 1", {}, error)

    assert is_transient(sa_exc.OperationalError("select 1", {}, psycopg.OperationalError("server closed")))
    assert is_transient(wrapped("40P01"))  # deadlock
    assert is_transient(wrapped("40001"))  # serialization failure
    assert is_transient(wrapped("57014"))  # statement timeout
    assert not is_transient(wrapped("23505"))
    assert not is_transient(wrapped("22P02"))
    assert not is_transient(ValueError("bug"))


def test_every_retry_waits_less_than_the_visibility_timeout(settings) -> None:
    for visibility in (10, 60, 300, 3600):
        own = settings.model_copy(update={"celery_visibility_timeout_seconds": visibility})
        waits = [retry_countdown(own, retries) for retries in range(own.inbox_max_attempts + 10)]
        assert waits[:3] == [1, 2, 4] or visibility < 16
        assert max(waits) == max_retry_countdown(own) < visibility
