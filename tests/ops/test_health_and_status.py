"""Pipeline health: the lag figures (oldest unapplied inbox event, oldest unsent outbox event, queue depth) in
`segbase status` and in the API's /metrics, read from PostgreSQL and Redis when asked."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import httpx
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import text

from db.engine import create_owner_engine
from db.health import pipeline_lag
from db.uow import Caller, UnitOfWork
from observability.metrics import render_metrics
from schemas.settings import Settings
from tests.support.metrics import metric
from tests.support.processes import ROOT, ApiProcess, free_port


def test_lag_is_the_age_of_the_oldest_unfinished_row(settings):
    """Rows inserted and measured in one transaction that is rolled back (no relay or worker can see them)."""
    owner = create_owner_engine(settings)
    try:
        with owner.connect() as conn, conn.begin() as transaction:
            # The head of the relay's queue is the lowest unsent id: make ours the only unsent row.
            conn.execute(text("update internal.realtime_outbox set sent_at = now() where sent_at is null"))
            conn.execute(text(
                "insert into internal.realtime_outbox (schema_name, table_name, op, pk, captured_at) "
                "values ('public', 'segmentation_results', 'DELETE', '{}', now() - interval '2 hours')"))
            conn.execute(text(
                "insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload, received_at) "
                "values (:key, gen_random_uuid(), 'done', '{}', now() - interval '3 hours')"),
                {"key": f"test:{uuid.uuid4()}"})
            lag = pipeline_lag(UnitOfWork(conn, Caller.service()))
            transaction.rollback()
    finally:
        owner.dispose()
    assert lag["outbox_oldest_unsent_seconds"] >= 7200 and lag["outbox_unsent"] >= 1
    assert lag["inbox_oldest_unapplied_seconds"] >= 10800 and lag["inbox_unapplied"] >= 1


def run_segbase(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGBASE_", "PYTEST_"))}
    env.update(settings.to_env(), SEGBASE_ENV_FILE="")
    return subprocess.run([sys.executable, "-m", "segbase", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def _status(settings: Settings) -> dict:
    done = run_segbase(settings, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_segbase_status_shows_queue_depth_and_lag(settings, owner_conn):
    event_id = owner_conn.execute(
        "insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload, received_at) "
        "values (%s, gen_random_uuid(), 'done', %s, now() - interval '1 hour') returning id",
        (f"test:{uuid.uuid4()}", Jsonb({}))).fetchone()[0]
    try:
        status = _status(settings)
    finally:
        owner_conn.execute("update internal.webhook_inbox set state = 'rejected', reason = 'test row', "
                           "finished_at = now() where id = %s", (event_id,))
    assert status["inbox_oldest_unapplied_seconds"] >= 3600 and status["inbox_unapplied"] >= 1
    assert isinstance(status["outbox_oldest_unsent_seconds"], float)
    assert isinstance(status["queue_depth"], int) and isinstance(status["queue_unacked"], int)


def test_segbase_status_names_an_unreachable_redis(settings):
    status = _status(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}))
    assert status["redis"].startswith("unreachable")
    assert "outbox_oldest_unsent_seconds" in status  # PostgreSQL's part is still reported


def test_api_metrics_carry_pipeline_lag_and_http_counts(api_server, settings):
    httpx.get(f"{api_server.url}/healthz")
    body = httpx.get(f"{api_server.url}/metrics").text
    assert metric(body, "segbase_pipeline_probe_up") == 1.0
    for name in ("segbase_inbox_oldest_unapplied_seconds", "segbase_outbox_oldest_unsent_seconds",
                 "segbase_celery_queue_depth", "segbase_celery_unacked", "segbase_inbox_unapplied"):
        assert metric(body, name) >= 0
    assert 'segbase_http_requests_total{method="GET",route="/healthz",status="200"}' in body


def test_a_failing_probe_does_not_fail_the_scrape():
    def broken() -> dict:
        raise psycopg.OperationalError("database is down")

    body, _ = render_metrics(broken)
    assert "segbase_pipeline_probe_up 0.0" in body.decode()


def test_readyz_names_an_unreachable_redis_with_503(settings):
    api = ApiProcess(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})).start()
    try:
        ready = httpx.get(f"{api.url}/readyz", timeout=30)
    finally:
        api.stop()
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"] == "ok" and ready.json()["checks"]["redis"].startswith("unreachable")
