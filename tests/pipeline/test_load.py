"""1,000 webhook events for 20 users over HTTP, applied by 2 worker processes: every event reaches a final state,
balances and usage_logs are exact (one charge per done result, none for errors, reservations all released)."""
from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.database import make_test_settings
from tests.support.pipeline import (
    balances,
    event_body,
    new_users,
    post_event,
    start_worker,
    stop_all,
    submit_results,
    wait_until_final,
)
from tests.support.processes import ApiProcess

USERS = 20
RESULTS_PER_USER = 25
ERRORS_PER_USER = 5


@pytest.fixture
def load_stack(settings):
    """Its own INSTANCE_ID (own queue), so exactly two worker processes serve these events."""
    own = make_test_settings(settings.database_url, f"{settings.instance_id}ld")
    api = ApiProcess(own).start()
    workers = [start_worker(own, f"load-worker-{n}") for n in (1, 2)]
    api.workers = workers
    yield api
    stop_all(*workers, api)


def test_a_thousand_events_for_twenty_users_across_two_workers_are_exact(settings, engine, db, http,
                                                                         load_stack) -> None:
    price = settings.credits_per_segmentation
    users = new_users(settings, USERS, credits=RESULTS_PER_USER * price)
    results = {user.id: submit_results(engine, user, RESULTS_PER_USER) for user in users}
    events = []
    for result_ids in results.values():
        for n, result_id in enumerate(result_ids):
            final = event_body(result_id, "error", error="model failed") if n < ERRORS_PER_USER \
                else event_body(result_id, "done")
            events += [event_body(result_id, "processing", metadata={"worker": "gpu-1"}), final]
    random.Random(7).shuffle(events)  # finals may overtake their processing: both orders must end the same
    assert len(events) == 1000

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda body: post_event(http, load_stack.url, body).status_code, events))
    assert codes == [202] * len(events)

    all_ids = [result_id for ids in results.values() for result_id in ids]
    final = wait_until_final(db, all_ids, timeout=300)
    done_per_user = RESULTS_PER_USER - ERRORS_PER_USER
    assert (final.events, final.unfinished_events, final.states.get("rejected", 0)) == (1000, 0, 0)
    assert final.states.get("applied", 0) + final.states.get("ignored", 0) == 1000
    assert (final.done, final.error, final.in_flight) == (USERS * done_per_user, USERS * ERRORS_PER_USER, 0)
    assert (final.charges, final.double_charged) == (USERS * done_per_user, 0)
    assert balances(db, users) == {user.id: ERRORS_PER_USER * price for user in users}
    per_user = dict(db.execute(
        "select user_id::text, count(*) from public.usage_logs where action = 'segmentation' "
        "and user_id = any(%s::uuid[]) group by 1", ([u.id for u in users],)).fetchall())
    assert per_user == {user.id: done_per_user for user in users}
    applied_by = [worker.log_text().count('"webhook event ') for worker in load_stack.workers]
    assert all(applied_by), applied_by  # both worker processes took part
    print(f"\nload: events sent 1000, final {final.states}, charges {final.charges}, double-charged "
          f"{final.double_charged}, lost {final.unfinished_events}, per worker {applied_by}")
