"""Push dispatch under a crash: `kill -9` of the worker in the middle of a delivery loses no job, and the repeat
carries the same webhook-id. Its own module, so that no other releaser holds the database's releaser lock."""
from __future__ import annotations

import threading

import pytest

from tests.support.dispatch import job, processes, push_settings, submit
from tests.support.factories import create_user
from tests.support.processes import wait_for
from tests.support.receiver import Receiver, Reply
from workers.dispatch import webhook_id


@pytest.mark.fault
def test_kill_9_of_the_delivering_worker_loses_no_job(dispatch_settings, dispatch_engine, db):
    """The worker dies mid-delivery (the request reached the backend, no answer yet): once the attempt's hold
    expires the job is released again and another worker delivers it — same webhook-id, nothing lost."""
    hold = threading.Event()
    receiver = Receiver(lambda request, index: Reply(200, hold=hold) if index == 0 else Reply(200)).start()
    # The relay delivers nothing itself here, so the attempt is the worker's.
    settings = push_settings(dispatch_settings, receiver, "k", dispatch_timeout_seconds=1, dispatch_relay_threads=0)
    try:
        with processes() as running:
            worker = running.worker(settings, "doomed-worker", concurrency=1)
            running.relay(settings, "relay-k")
            user = create_user(settings, credits=5)
            [job_id] = submit(dispatch_engine, user)
            receiver.wait_for_requests(1, job_id)
            worker.kill()  # SIGKILL while the request is open
            hold.set()
            assert job(db, job_id).state == "sending"
            running.worker(settings, "successor-worker", concurrency=1)
            first, second = receiver.wait_for_requests(2, job_id, timeout=90)
            assert first.webhook_id == second.webhook_id == webhook_id(job_id)
            wait_for(lambda: job(db, job_id).state == "delivered", timeout=60, message="the job to be delivered")
    finally:
        receiver.stop()


@pytest.mark.fault
def test_kill_9_of_the_relay_delivering_an_attempt_itself_loses_no_job(dispatch_settings, dispatch_engine, db):
    """The relay delivers the attempt on one of its own threads and dies mid-delivery: the next relay to take the
    releaser's lock releases the job again once the hold expires — same webhook-id, nothing lost."""
    hold = threading.Event()
    receiver = Receiver(lambda request, index: Reply(200, hold=hold) if index == 0 else Reply(200)).start()
    settings = push_settings(dispatch_settings, receiver, "r", dispatch_timeout_seconds=1, dispatch_relay_threads=1)
    try:
        with processes() as running:
            relay = running.relay(settings, "doomed-relay")
            user = create_user(settings, credits=5)
            [job_id] = submit(dispatch_engine, user)
            receiver.wait_for_requests(1, job_id)
            relay.kill()  # SIGKILL while the request is open
            hold.set()
            assert job(db, job_id).state == "sending"
            running.relay(settings, "successor-relay")
            first, second = receiver.wait_for_requests(2, job_id, timeout=90)
            assert first.webhook_id == second.webhook_id == webhook_id(job_id)
            wait_for(lambda: job(db, job_id).state == "delivered", timeout=60, message="the job to be delivered")
    finally:
        receiver.stop()


def test_attempts_beyond_the_relays_delivery_threads_go_to_the_workers(dispatch_settings, dispatch_engine, db):
    """With its one delivery thread busy (the backend holds the first request), the relay hands the next attempt
    to the workers as a Celery task: it arrives while the first is still held."""
    hold = threading.Event()
    receiver = Receiver(lambda request, index: Reply(200, hold=hold) if index == 0 else Reply(200)).start()
    settings = push_settings(dispatch_settings, receiver, "o", dispatch_relay_threads=1)
    try:
        with processes() as running:
            running.worker(settings, "overflow-worker", concurrency=1)
            running.relay(settings, "relay-o")
            user = create_user(settings, credits=5)
            [held] = submit(dispatch_engine, user)
            receiver.wait_for_requests(1, held)
            [handed_over] = submit(dispatch_engine, user)
            receiver.wait_for_requests(1, handed_over)
            assert not hold.is_set() and len(receiver.requests(held)) == 1
            hold.set()
            wait_for(lambda: {job(db, j).state for j in (held, handed_over)} == {"delivered"},
                     message="both jobs to be delivered")
    finally:
        hold.set()
        receiver.stop()
