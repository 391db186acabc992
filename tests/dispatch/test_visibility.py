"""What an operator sees of dispatch: `segbase status` and /metrics report the queue depth, the oldest waiting job,
leases and attempts in flight, failures and the endpoint's state, read from PostgreSQL when asked."""
from __future__ import annotations

import json

import httpx

from db import dispatch
from db.uow import Caller, unit_of_work
from tests.support.dispatch import run_cli, submit
from tests.support.factories import create_user
from tests.support.metrics import metric


def test_status_and_metrics_report_the_dispatch_queue(dispatch_settings, dispatch_engine, dispatch_api, db):
    user = create_user(dispatch_settings, credits=10)
    submit(dispatch_engine, user, 3)
    db.execute("update internal.dispatch_jobs set enqueued_at = now() - interval '2 minutes' "
               "where state = 'queued'")
    done = run_cli(dispatch_settings, "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["dispatch_mode"] == "pull"
    assert status["dispatch_queued"] == 3 and status["dispatch_ready"] == 3
    assert status["dispatch_oldest_waiting_seconds"] >= 120
    assert status["dispatch_enabled"] is True and status["dispatch_circuit_open"] is False

    body = httpx.get(f"{dispatch_api.url}/metrics", timeout=30).text
    assert metric(body, "segbase_dispatch_queue_depth") == 3
    assert metric(body, "segbase_dispatch_oldest_waiting_seconds") >= 120
    for name in ("segbase_dispatch_in_flight", "segbase_dispatch_leased", "segbase_dispatch_leases_expired",
                 "segbase_dispatch_failed_jobs", "segbase_dispatch_disabled", "segbase_dispatch_circuit_open"):
        assert metric(body, name) >= 0


def test_a_job_dispatch_gave_up_on_is_counted_as_a_failed_dispatch(dispatch_settings, dispatch_engine, db):
    """`segbase status -o json` names it FAILED_DISPATCHES, as the console's jobs page lists it."""
    def failed_dispatches() -> int:
        done = run_cli(dispatch_settings, "status", "-o", "json")
        return json.loads(done.stdout)["FAILED_DISPATCHES"]

    before = failed_dispatches()
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        [attempt] = dispatch.release_jobs(uow=uow, max_jobs=100, max_in_flight=16, hold_seconds=30,
                                          failure_threshold=3)
    with unit_of_work(dispatch_engine, Caller.service()) as uow:
        assert dispatch.record_attempt(uow=uow, job_id=attempt.job_id, attempt_id=attempt.attempt_id,
                                       result="failed", detail="HTTP 502", retry_in_seconds=None,
                                       failure_threshold=3, open_seconds=30, max_open_seconds=600) == "finished"
    assert attempt.job_id == job_id
    assert failed_dispatches() == before + 1
