"""Fault injection, each test on a Redis database of its own (claimed, flushed) and its own INSTANCE_ID:

- `kill -9` of a worker holding messages, with the sweeper disabled: Celery's redelivery alone (acks_late +
  the visibility timeout) applies every event exactly once;
- `FLUSHDB` of the Redis database while events are queued: the sweeper (two beats running) re-queues them from
  the PostgreSQL inbox and every event is applied exactly once.

Each prints its figures (events sent, applied, duplicates, lost, double-charged) for docs/PIPELINE.md.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from broker.celery_app import queue_name
from tests.support.pipeline import (
    balances,
    claimed_redis_db,
    event_body,
    fault_settings,
    figures,
    new_users,
    post_event,
    start_worker,
    stop_all,
    submit_results,
    wait_until_final,
)
from tests.support.processes import ApiProcess, SegbaseProcess, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.xdist_group("serial")]

USERS = 10
RESULTS_PER_USER = 30
REPEATS = 50  # identical bodies again: answered 200 duplicate, never stored twice
RESENDS = 50  # the same event under a new webhook-id: stored, then found `duplicate` by the worker


def send_all(http, api: ApiProcess, bodies: list[dict], webhook_ids: list[str | None]) -> list[int]:
    def send(pair):
        body, webhook_id = pair
        return post_event(http, api.url, body, headers={"webhook-id": webhook_id} if webhook_id else None).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(send, zip(bodies, webhook_ids)))


def workload(settings, engine):
    """Users with exactly enough credits for their results, and the events: one `done` per result, plus
    REPEATS identical repeats and RESENDS re-sends under new webhook-ids."""
    users = new_users(settings, USERS, credits=RESULTS_PER_USER * settings.credits_per_segmentation)
    result_ids = [r for user in users for r in submit_results(engine, user, RESULTS_PER_USER)]
    bodies = [event_body(r, "done") for r in result_ids]
    ids = [f"msg_{r}" for r in result_ids]
    bodies += bodies[:REPEATS] + bodies[-RESENDS:]
    ids += ids[:REPEATS] + [f"msg_{r}_again" for r in result_ids[-RESENDS:]]
    return users, result_ids, bodies, ids


def check_exactly_once(settings, db, users, result_ids, codes) -> dict:
    final = wait_until_final(db, result_ids, timeout=180)
    assert codes.count(202) == len(result_ids) + RESENDS and codes.count(200) == REPEATS
    assert final.states == {"applied": len(result_ids), "duplicate": RESENDS}
    assert (final.done, final.in_flight, final.charges, final.double_charged) == (len(result_ids), 0,
                                                                                 len(result_ids), 0)
    assert balances(db, users) == {user.id: 0 for user in users}
    return {"events sent": len(codes), "accepted (202)": codes.count(202), "repeats answered 200": REPEATS,
            "applied": final.states["applied"], "duplicates (inbox)": final.states["duplicate"],
            "lost": final.results - final.done, "double-charged": final.double_charged}


def test_kill_9_of_a_worker_mid_run_redelivery_alone_applies_every_event_once(settings, engine, db, http) -> None:
    with claimed_redis_db() as redis_db:
        own = fault_settings(settings, "kill", redis_db, inbox_sweep_enabled=False,
                             celery_visibility_timeout_seconds=10, worker_concurrency=2)
        api = ApiProcess(own).start()
        victim = survivor = None
        try:
            users, result_ids, bodies, ids = workload(settings, engine)
            codes = send_all(http, api, bodies, ids)  # queued while no worker runs: a backlog
            victim = start_worker(own, "victim")
            wait_for(lambda: figures(db, result_ids).states.get("applied", 0) >= 40, timeout=60,
                     message="the victim to apply some events")
            victim.kill()  # SIGKILL to the whole process group: main process and pool children
            in_flight = redis.Redis.from_url(own.redis_url).hlen(f"{own.redis_key('kombu')}:unacked")
            assert in_flight > 0  # the victim died holding messages only redelivery can bring back

            survivor = start_worker(own, "survivor")
            result = check_exactly_once(settings, db, users, result_ids, codes)
            redelivered = db.execute("select count(*) from internal.webhook_inbox where result_id = any(%s::uuid[]) "
                                     "and attempts > 1", (result_ids,)).fetchone()[0]
            result.update({"unacked at kill": in_flight, "applied after a second attempt": redelivered})
            print(f"\nkill -9 figures: {result}")
        finally:
            stop_all(*(p for p in (survivor, victim, api) if p is not None))


def test_flushdb_mid_run_the_sweeper_completes_every_event(settings, engine, db, http) -> None:
    with claimed_redis_db() as redis_db:
        own = fault_settings(settings, "flush", redis_db, inbox_sweep_enabled=True, inbox_sweep_delay_seconds=2,
                             inbox_sweep_interval_seconds=1, celery_visibility_timeout_seconds=10)
        broker = redis.Redis.from_url(own.redis_url)
        api = ApiProcess(own).start()
        processes: list[SegbaseProcess] = [api]
        try:
            users, result_ids, bodies, ids = workload(settings, engine)
            half = len(result_ids) // 2
            codes = send_all(http, api, bodies[:half], ids[:half])
            processes.append(start_worker(own, "flush-worker"))
            wait_for(lambda: figures(db, result_ids).states.get("applied", 0) >= 20, timeout=60,
                     message="the worker to apply some events")
            queued = broker.llen(f"{own.redis_key('kombu')}:{queue_name(own)}")
            broker.flushdb()  # every queued message and kombu's bookkeeping are gone
            assert queued > 0
            codes += send_all(http, api, bodies[half:], ids[half:])
            processes += [SegbaseProcess(own, "beat", name=f"beat-{n}").start() for n in (1, 2)]  # two beats
            result = check_exactly_once(settings, db, users, result_ids, codes)
            requeued = db.execute("select count(*) from internal.webhook_inbox where result_id = any(%s::uuid[]) "
                                  "and enqueued_at is not null", (result_ids,)).fetchone()[0]
            result.update({"queued messages flushed": queued, "re-queued by the sweeper": requeued})
            print(f"\nFLUSHDB figures: {result}")
        finally:
            stop_all(*reversed(processes))
