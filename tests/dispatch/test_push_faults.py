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
    settings = push_settings(dispatch_settings, receiver, "k", dispatch_timeout_seconds=1)
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
