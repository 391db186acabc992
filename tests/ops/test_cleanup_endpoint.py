"""POST/GET /functions/v1/cleanup-old-results against a live API and a real worker (its own INSTANCE_ID, so its
queue is its own), with the worker's metrics endpoint on: the same Celery task beat runs, end to end."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from celery.schedules import crontab

from broker.tasks import CLEANUP_TASK, RECONCILE_TASK
from db.cleanup import cleanup_lock
from tests.ops.test_health_and_status import run_segbase
from tests.support.factories import create_user
from tests.support.metrics import metric, sample_value
from tests.support.ops import existing, insert_result
from tests.support.processes import ApiProcess, SegbaseProcess, free_port, wait_for
from workers.main import create_worker_celery
from workers.maintenance import (
    beat_schedule,
    parse_cron,
    time_out_stuck_results,
)

PATH = "/functions/v1/cleanup-old-results"


@pytest.fixture(scope="module")
def ops_stack(settings) -> Iterator[tuple[ApiProcess, SegbaseProcess, int]]:
    metrics_port = free_port()
    own = settings.model_copy(update={"instance_id": f"{settings.instance_id}cl",
                                      "worker_metrics_port": metrics_port})
    api = ApiProcess(own).start()
    worker = SegbaseProcess(own, "worker", "--concurrency", "1", name="cleanup-worker").start()
    try:
        wait_for(lambda: "ready" in worker.log_text() or not worker.alive(), timeout=60, message="worker start")
        assert worker.alive(), worker.log_text()
        yield api, worker, metrics_port
    finally:
        worker.stop()
        api.stop()


def service_headers(key: str) -> dict[str, str]:
    return {"apikey": key, "Authorization": f"Bearer {key}"}


def test_only_the_service_role_key_may_run_or_read_cleanup(ops_stack, anon_key, settings):
    api, _, _ = ops_stack
    user = create_user(settings)
    cases = [
        ({}, 401, {"msg": "Error: Missing authorization header"}),
        ({"Authorization": "Token abc"}, 401, {"msg": "Error: Auth header is not 'Bearer {token}'"}),
        ({"Authorization": "Bearer not-a-jwt"}, 401, {"msg": "Invalid JWT"}),
    ]
    for headers, status, body in cases:
        response = httpx.post(api.url + PATH, headers=headers)
        assert (response.status_code, response.json()) == (status, body)
    for headers in (service_headers(anon_key), user.headers(anon_key)):
        for response in (httpx.post(api.url + PATH, headers=headers),
                         httpx.get(api.url + PATH, params={"job_id": str(uuid.uuid4())}, headers=headers)):
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "forbidden"


def test_get_names_a_missing_or_malformed_job(ops_stack, service_key):
    api, _, _ = ops_stack
    headers = service_headers(service_key)
    assert httpx.get(api.url + PATH, headers=headers).json()["error"]["code"] == "job_id_required"
    bad = httpx.get(api.url + PATH, params={"job_id": "nope"}, headers=headers)
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_job_id")
    missing = httpx.get(f"{api.url}{PATH}/{uuid.uuid4()}", headers=headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "job_not_found")


def test_post_queues_the_job_and_get_returns_its_counts(ops_stack, service_key, owner_conn, settings):
    api, _, metrics_port = ops_stack
    user = create_user(settings, credits=100)
    old = [insert_result(owner_conn, user.id, "done", timedelta(days=10)) for _ in range(5)]
    young = insert_result(owner_conn, user.id, "done", timedelta(days=1))
    in_flight = insert_result(owner_conn, user.id, "pending", timedelta(days=10), updated_age=timedelta(0))

    started = httpx.post(api.url + PATH, headers=service_headers(service_key), json={})
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    assert started.json()["status"] == "queued"

    def finished():
        response = httpx.get(api.url + PATH, params={"job_id": job_id}, headers=service_headers(service_key))
        return response.status_code == 200 and response
    job = wait_for(finished, timeout=60, interval=0.2, message="the cleanup job to finish").json()

    assert job["status"] == "done" and job["trigger"] == "request"
    assert job["counts"]["results"] >= len(old) and job["counts"]["transactions"] >= 3
    assert set(job["counts"]) >= {"results", "inbox", "outbox", "longest_transaction_ms", "seconds"}
    assert existing(owner_conn, old + [young, in_flight]) == {young, in_flight}
    # The same job id by path answers the same.
    assert httpx.get(f"{api.url}{PATH}/{job_id}", headers=service_headers(service_key)).json()["status"] == "done"

    # The worker's own metrics endpoint counts the task and the deleted rows.
    text = wait_for(lambda: (body := httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text)
                    and "segbase_cleanup_rows_deleted_total" in body and body, timeout=10, message="worker metrics")
    assert metric(text, "segbase_tasks_total", outcome="success", task=CLEANUP_TASK) >= 1
    assert metric(text, "segbase_cleanup_rows_deleted_total", table="results") >= len(old)


def test_a_run_while_another_holds_the_lock_is_recorded_as_skipped(ops_stack, service_key, engine):
    api, _, _ = ops_stack
    with cleanup_lock(engine):  # as if a second beat's run were in progress
        job_id = httpx.post(api.url + PATH, headers=service_headers(service_key)).json()["job_id"]

        def finished():
            response = httpx.get(api.url + PATH, params={"job_id": job_id}, headers=service_headers(service_key))
            return response.status_code == 200 and response.json()
        job = wait_for(finished, timeout=60, interval=0.2, message="the cleanup job to finish")
    assert job["status"] == "skipped" and "lock" in job["detail"]


def test_the_reconcile_task_times_out_stuck_results_and_counts_them(ops_stack, owner_conn, settings):
    api, _, metrics_port = ops_stack
    user = create_user(settings, credits=10)
    stuck = insert_result(owner_conn, user.id, "processing", timedelta(hours=3), updated_age=timedelta(hours=2))
    own = settings.model_copy(update={"instance_id": f"{settings.instance_id}cl"})
    create_worker_celery(own).send_task(RECONCILE_TASK)
    wait_for(lambda: owner_conn.execute("select status::text = 'error' from public.segmentation_results "
                                        "where id = %s", (stuck,)).fetchone()[0], timeout=60,
             message="the stuck result to time out")
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert metric(text, "segbase_results_timed_out_total") >= 1


def test_beat_schedule_has_cleanup_on_the_cron_setting_and_reconciliation(settings):
    schedule = beat_schedule(settings.model_copy(update={"cleanup_schedule_cron": "5 4 * * 1-5",
                                                         "reconcile_interval_seconds": 45}))
    assert schedule["cleanup-old-results"] == {"task": CLEANUP_TASK, "schedule": crontab("5", "4", day_of_week="1-5")}
    assert schedule["reconcile-stuck-results"]["task"] == RECONCILE_TASK
    assert schedule["reconcile-stuck-results"]["schedule"] == 45.0
    with pytest.raises(ValueError, match="5 cron fields"):
        parse_cron("every day")


def test_a_late_done_is_rejected_charged_nothing_and_counted(ops_stack, owner_conn, settings, engine):
    api, _, metrics_port = ops_stack
    user = create_user(settings, credits=2)
    result = insert_result(owner_conn, user.id, "processing", timedelta(hours=3), updated_age=timedelta(hours=2))
    assert result in time_out_stuck_results(engine, timeout_seconds=3600, batch_size=100)

    response = httpx.post(f"{api.url}/functions/v1/process-webhook", headers={"X-API-Key": "test-webhook-key"},
                          json={"task_id": result, "status": "done", "mask_url": "https://cdn.example/m.png",
                                "labels": []})
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    state, reason = wait_for(lambda: (row := owner_conn.execute(
        "select state, reason from internal.webhook_inbox where id = %s and state <> 'received'",
        (event_id,)).fetchone()) and row, timeout=60, message="the late event to be final")
    assert state == "rejected" and reason.startswith("late:")
    assert owner_conn.execute("select credits from public.users_profile where id = %s", (user.id,)).fetchone()[0] == 2

    def late_counted():
        body = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        return sample_value(body, "segbase_webhook_events_total", state="rejected") is not None and body
    body = wait_for(late_counted, timeout=10, message="the worker's metrics to count the event")
    assert metric(body, "segbase_webhook_late_events_total") >= 1
    api_body = httpx.get(f"{api.url}/metrics").text
    assert metric(api_body, "segbase_webhook_events_total", state="accepted") >= 1


def test_worker_ping_answers_for_a_live_worker_only(ops_stack, settings):
    alive = run_segbase(settings.model_copy(update={"instance_id": f"{settings.instance_id}cl"}),
                        "worker-ping", "--timeout", "2")
    assert alive.returncode == 0 and json.loads(alive.stdout), alive.stdout + alive.stderr
    nobody = run_segbase(settings.model_copy(update={"instance_id": f"{settings.instance_id}none"}),
                         "worker-ping", "--timeout", "1")
    assert nobody.returncode == 1
