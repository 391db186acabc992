"""Push dispatch end to end: real `segbase relay` (the releaser) and `segbase worker` processes POST jobs to a real
HTTP receiver the test runs, which fails, throttles, goes down, answers 410 or answers late as each test scripts.
Every delivery is checked as a backend would: a valid Standard Webhooks signature, one webhook-id per job."""
from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from schemas.settings import Settings
from tests.support.dispatch import (
    SECRET,
    TIMEOUT_SECONDS,
    endpoint,
    job,
    push_settings,
    reserved,
    result,
    run_cli,
    processes,
    submit,
)
from tests.support.factories import create_user
from tests.support.metrics import metric
from tests.support.processes import wait_for
from tests.support.receiver import Receiver, Reply, always, fail_first
from workers.dispatch import webhook_id


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def push(dispatch_settings: Settings, receiver: Receiver) -> Iterator[Settings]:
    """A releaser and a worker pushing to `receiver`, shared by the tests of this module."""
    settings = push_settings(dispatch_settings, receiver, "p")
    with processes() as running:
        running.worker(settings, "push-worker", concurrency=4)
        running.relay(settings)
        yield settings


@pytest.fixture(autouse=True)
def fresh_receiver(receiver: Receiver) -> None:
    receiver.behaviour = always(200)
    with receiver.lock:
        receiver.received.clear()
    if receiver.server is None:
        receiver.start()


def test_a_job_is_pushed_as_a_signed_standard_webhook(push, dispatch_engine, db, receiver):
    user = create_user(push, credits=5)
    [job_id] = submit(dispatch_engine, user, prompt="the dog")
    [delivery] = receiver.wait_for_requests(1, job_id)

    message = receiver.verify(SECRET, delivery)  # raises unless the signature and timestamp are valid
    assert delivery.webhook_id == webhook_id(job_id) and delivery.headers["content-type"] == "application/json"
    assert message["type"] == "segmentation.job"
    data = message["data"]
    assert data["job_id"] == job_id and data["user_id"] == user.id and data["text_prompt"] == "the dog"
    assert data["source_image_url"] == "https://img.example/in.png"
    assert data["callback_url"] == f"{push.public_url}/functions/v1/process-webhook"
    assert data["mask_path"] == f"masks/{user.id}/{job_id}.png" and data["attempt"] == 1
    assert "lease_id" not in data or data["lease_id"] is None
    wait_for(lambda: job(db, job_id).state == "delivered", message="the job to be delivered")
    assert job(db, job_id).first_dispatched_at is not None


def test_failed_deliveries_are_retried_with_the_same_webhook_id(push, dispatch_engine, db, receiver):
    receiver.behaviour = fail_first(2, status=500)
    user = create_user(push, credits=5)
    [job_id] = submit(dispatch_engine, user)
    deliveries = receiver.wait_for_requests(3, job_id)
    assert {d.webhook_id for d in deliveries} == {webhook_id(job_id)}
    for delivery in deliveries:
        receiver.verify(SECRET, delivery)  # each attempt is signed afresh (its own timestamp)
    wait_for(lambda: job(db, job_id).state == "delivered", message="the job to be delivered")
    assert job(db, job_id).attempts == 3
    assert endpoint(db)["consecutive_failures"] == 0  # a success resets the breaker's count


def test_429_with_retry_after_is_honoured_and_costs_no_attempt(push, dispatch_engine, db, receiver):
    receiver.behaviour = lambda request, index: Reply(429, {"Retry-After": "2"}) if index == 0 else Reply(200)
    user = create_user(push, credits=5)
    [job_id] = submit(dispatch_engine, user)
    first, second = receiver.wait_for_requests(2, job_id)
    assert second.at - first.at >= 2 - 0.05  # not before the backend said (a lower bound, not a speed claim)
    wait_for(lambda: job(db, job_id).state == "delivered", message="the job to be delivered")
    assert job(db, job_id).attempts == 1 and endpoint(db)["consecutive_failures"] == 0


def test_a_backend_down_for_a_while_is_probed_not_hammered_and_gets_every_job(push, dispatch_engine, db,
                                                                               receiver):
    receiver.stop()
    user = create_user(push, credits=20)
    submitted = submit(dispatch_engine, user, 10)
    wait_for(lambda: endpoint(db)["circuit_open_until"] is not None, message="the circuit to open")
    # Stay down through a few open periods: half-open probes are one at a time.
    wait_for(lambda: endpoint(db)["consecutive_failures"] >= 6, timeout=60, message="a few probes")
    failures_while_down = endpoint(db)["consecutive_failures"]
    attempts = db.execute("select sum(attempts) from internal.dispatch_jobs where result_id = any(%s::uuid[])",
                          (submitted,)).fetchone()[0]
    assert attempts == failures_while_down or attempts == failures_while_down + 1  # one probe may be in flight
    # Hammering would have tried every job several times; a breaker tried the first in-flight batch, then probes.
    assert failures_while_down < 4 + 10
    assert all(job(db, j).state in ("queued", "sending") for j in submitted)

    receiver.start()
    wait_for(lambda: all(job(db, j).state == "delivered" for j in submitted), timeout=90,
             message="every job to be delivered once the backend is back")
    assert {d.job_id for d in receiver.requests()} == set(submitted)
    assert endpoint(db)["consecutive_failures"] == 0


def test_410_disables_dispatch_until_enabled_then_queued_jobs_resume(push, dispatch_engine, db, receiver,
                                                                    dispatch_api):
    receiver.behaviour = always(410)
    user = create_user(push, credits=10)
    first = submit(dispatch_engine, user)[0]
    receiver.wait_for_requests(1, first)
    wait_for(lambda: endpoint(db)["enabled"] is False, message="dispatch to be disabled")
    later = submit(dispatch_engine, user, 3)
    assert metric(httpx.get(f"{dispatch_api.url}/metrics").text, "segbase_dispatch_disabled") == 1

    receiver.behaviour = always(200)
    assert len(receiver.requests()) == 1
    enable = run_cli(push, "dispatch", "enable")
    assert enable.returncode == 0 and "re-enabled" in enable.stdout, enable.stderr
    wait_for(lambda: all(job(db, j).state == "delivered" for j in [first, *later]), timeout=60,
             message="queued jobs to resume")
    assert metric(httpx.get(f"{dispatch_api.url}/metrics").text, "segbase_dispatch_disabled") == 0
    # Nothing was delivered while disabled: the only requests are the 410 and one per job after re-enabling.
    assert sorted(d.job_id for d in receiver.requests()) == sorted([first, first, *later])


def test_a_backend_slower_than_the_timeout_gets_the_job_again(push, dispatch_engine, db, receiver):
    receiver.behaviour = lambda request, index: Reply(200, delay=TIMEOUT_SECONDS + 2) if index == 0 else Reply(200)
    user = create_user(push, credits=5)
    [job_id] = submit(dispatch_engine, user)
    first, second = receiver.wait_for_requests(2, job_id)
    assert first.webhook_id == second.webhook_id == webhook_id(job_id)
    wait_for(lambda: job(db, job_id).state == "delivered", message="the job to be delivered")
    assert job(db, job_id).attempts == 2


def test_exhausted_retries_end_the_job_as_error_with_its_reservation_released(push, dispatch_engine, db,
                                                                              receiver):
    receiver.behaviour = always(500)
    user = create_user(push, credits=5)
    [job_id] = submit(dispatch_engine, user)
    wait_for(lambda: job(db, job_id).state == "finished", timeout=60, message="the job to give up")
    assert job(db, job_id).outcome == "dispatch_failed" and len(receiver.requests(job_id)) == 5
    assert result(db, job_id)["metadata"]["error"] == "dispatch_failed"
    assert "HTTP 500" in result(db, job_id)["metadata"]["error_detail"]
    assert reserved(db, user.id) == 0


def test_a_cancelled_job_is_never_delivered_after_the_cancel_committed(push, dispatch_engine, db, receiver):
    receiver.behaviour = lambda request, index: Reply(500) if index == 0 else Reply(200)
    user = create_user(push, credits=5)
    [cancelled] = submit(dispatch_engine, user)
    receiver.wait_for_requests(1, cancelled)
    wait_for(lambda: job(db, cancelled).state == "queued", message="the job to wait for its retry")
    db.execute("select internal.cancel_dispatch_job(%s)", (cancelled,))
    cancelled_at = time.time()
    db.execute("update internal.dispatch_endpoint set paused_until = null")

    # A job submitted after the cancel is delivered; the cancelled one, whose retry was due first, never again.
    [later] = submit(dispatch_engine, user)
    receiver.wait_for_requests(1, later)
    assert [d for d in receiver.requests(cancelled) if d.at >= cancelled_at] == []
    assert result(db, cancelled)["metadata"]["error"] == "cancelled" and reserved(db, user.id) == 1
