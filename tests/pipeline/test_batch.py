"""The batch path: one delivery claims the other never-attempted events and applies them in one transaction.
A poison member does not hold the others back (the batch falls back to one event per transaction) and costs
them no more than the one attempt the batch counted; duplicates, stale and unknown events get their usual
outcome; a later delivery of a batched event's own message changes nothing. Eager task calls, real PostgreSQL."""
from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import exc as sa_exc

from broker.tasks import APPLY_WEBHOOK_EVENT_TASK
from db.pipeline import store_inbox_event
from db.uow import Caller, unit_of_work
from tests.support.factories import create_user
from tests.support.pipeline import MASK_URL, figures, submit_results
from workers.main import create_worker_celery


def store(engine, db, result_id: str, status: str, order: int) -> str:
    """An inbox event received long ago, so it is among the oldest (a batch takes the oldest first)."""
    payload = json.dumps({"mask_url": MASK_URL} if status == "done" else {})
    with unit_of_work(engine, Caller.service()) as uow:
        event_id = store_inbox_event(uow=uow, idempotency_key=f"test:{uuid.uuid4()}", webhook_id=None,
                                     result_id=result_id, event_status=status, payload=payload).event_id
    db.execute("update internal.webhook_inbox set received_at = timestamptz '2001-01-01' + %s * interval '1 second' "
               "where id = %s", (order, event_id))
    return event_id


def inbox(db, event_ids: list[str]) -> dict[str, tuple[str, int]]:
    rows = db.execute("select id::text, state, attempts from internal.webhook_inbox where id = any(%s::uuid[])",
                      (event_ids,)).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


@pytest.fixture
def apply_task(settings):
    return create_worker_celery(settings).tasks[APPLY_WEBHOOK_EVENT_TASK]


def test_a_batch_applies_each_event_with_its_usual_outcome_and_redelivery_changes_nothing(
        settings, engine, db, apply_task) -> None:
    user = create_user(settings, credits=3)
    first, second = submit_results(engine, user, 2)
    events = [store(engine, db, first, "processing", 1),
              store(engine, db, first, "done", 2),
              store(engine, db, first, "done", 3),        # a re-send under another key: duplicate
              store(engine, db, second, "done", 4),
              store(engine, db, second, "processing", 5),  # arrived after done: ignored as stale
              store(engine, db, str(uuid.uuid4()), "done", 6)]  # unknown result: rejected
    assert apply_task(events[0]) == "applied"
    states = inbox(db, events)
    assert [states[e][0] for e in events] == ["applied", "applied", "duplicate", "applied", "ignored", "rejected"]
    assert all(states[e][1] == 1 for e in events)  # one attempt each: the batch's
    # Each event's own message arrives later: it finds the event final and changes nothing.
    for event, expected in zip(events[1:], ["applied", "duplicate", "applied", "ignored", "rejected"]):
        assert apply_task(event) == expected
    assert inbox(db, events) == states
    final = figures(db, [first, second])
    assert (final.done, final.charges, final.double_charged) == (2, 2, 0)
    assert db.execute("select credits from public.users_profile where id = %s", (user.id,)).fetchone() == (1,)


@pytest.mark.parametrize("poison_leads", [False, True], ids=["poison-member", "poison-leader"])
def test_a_poison_event_in_a_batch_does_not_hold_back_the_others(settings, engine, db, apply_task,
                                                                 poison_leads: bool) -> None:
    user = create_user(settings, credits=5)
    results = submit_results(engine, user, 4)
    events = [store(engine, db, result_id, "done", order) for order, result_id in enumerate(results)]
    poison_result, poison = results[2], events[2]
    leader = poison if poison_leads else events[0]
    trigger = f"test_poison_{uuid.uuid4().hex[:12]}"
    db.execute(f"create function internal.{trigger}() returns trigger language plpgsql as "
               f"$$ begin perform 1 / 0; return new; end $$")
    db.execute(f"create trigger {trigger} before update on public.segmentation_results for each row "
               f"when (old.id = '{poison_result}'::uuid) execute function internal.{trigger}()")
    try:
        if poison_leads:
            with pytest.raises(sa_exc.DataError):  # the leader's own error fails its task, as without batching
                apply_task(leader)
        else:
            assert apply_task(leader) == "applied"
        states = inbox(db, events)
        innocent = [e for e in events if e != poison]
        assert all(states[e] == ("applied", 1) for e in innocent), states
        assert states[poison] == ("received", 1)
        # The poison event's own deliveries run it alone; the attempts counter ends it as before.
        for _ in range(settings.inbox_max_attempts - 1):
            with pytest.raises(sa_exc.DataError):
                apply_task(poison)
        assert apply_task(poison) == "rejected"
        assert inbox(db, innocent) == {e: ("applied", 1) for e in innocent}
    finally:
        db.execute(f"drop trigger if exists {trigger} on public.segmentation_results")
        db.execute(f"drop function if exists internal.{trigger}()")
    final = figures(db, results)
    assert (final.done, final.charges, final.double_charged) == (3, 3, 0)
    assert final.states == {"applied": 3, "rejected": 1}


def test_batch_size_one_applies_only_the_delivered_event(settings, engine, db) -> None:
    task = create_worker_celery(settings.model_copy(update={"inbox_batch_size": 1})).tasks[APPLY_WEBHOOK_EVENT_TASK]
    user = create_user(settings, credits=3)
    first, second = submit_results(engine, user, 2)
    events = [store(engine, db, first, "done", 1), store(engine, db, second, "done", 2)]
    assert task(events[1]) == "applied"
    assert inbox(db, events) == {events[0]: ("received", 0), events[1]: ("applied", 1)}
    assert task(events[0]) == "applied"
