"""process-webhook when a part is missing or stricter settings apply, each over a socket with its own `segbase api`:
Redis down → still 202 (durable in PostgreSQL) and the sweeper queues it later; PostgreSQL down → 503 with
Retry-After; WEBHOOK_SIGNING_SECRET set → Standard Webhooks signatures required (±5 minutes)."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from tests.support.database import make_test_settings
from tests.support.factories import create_user
from tests.support.pipeline import (
    event_body,
    post_event,
    submit_results,
    wait_until_final,
)
from tests.support.processes import ApiProcess, free_port, wait_for
from workers.main import create_worker_celery
from workers.tasks import sweep_inbox

SIGNING_SECRET = "whsec_" + base64.b64encode(b"segbase-test-signing-secret-32by").decode()


@pytest.fixture(scope="module")
def api_without_redis_with_signatures(settings):
    """An API whose Redis is unreachable and which requires signatures (one process serves both checks)."""
    degraded = make_test_settings(settings.database_url, settings.instance_id,
                                  redis_url=f"redis://127.0.0.1:{free_port()}/1",
                                  webhook_signing_secret=SIGNING_SECRET)
    server = ApiProcess(degraded).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_without_postgres(settings):
    degraded = make_test_settings(f"postgresql://postgres@127.0.0.1:{free_port()}/segbase_nowhere",
                                  f"{settings.instance_id}pg")
    server = ApiProcess(degraded).start()
    yield server
    server.stop()


def signed(body: str, *, msg_id: str | None = None, when: datetime | None = None,
           secret: str = SIGNING_SECRET) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = when or datetime.now(timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, when, body)}


def test_redis_down_still_accepts_durably_and_the_sweeper_queues_it_later(settings, engine, pipeline_worker, http,
                                                                          db, api_without_redis_with_signatures):
    user = create_user(settings, credits=2)
    [result_id] = submit_results(engine, user, 1)
    body = json.dumps(event_body(result_id))
    response = post_event(http, api_without_redis_with_signatures.url, body, headers=signed(body))
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    assert db.execute("select state from internal.webhook_inbox where id = %s", (event_id,)).fetchone() == (
        "received",)

    # The sweeper (as a worker runs it for beat) finds the event once it is older than the delay and queues it.
    sweeper = settings.model_copy(update={"inbox_sweep_delay_seconds": 1})
    app = create_worker_celery(sweeper)
    wait_for(lambda: sweep_inbox(sweeper, app) >= 1, timeout=30, message="the sweeper to queue the event")
    final = wait_until_final(db, [result_id])
    assert (final.states, final.charges) == ({"applied": 1}, 1)


BAD_SIGNATURES = {
    "unsigned": lambda body: {},
    "wrong secret": lambda body: signed(body, secret="whsec_" + base64.b64encode(b"x" * 32).decode()),
    "too old": lambda body: signed(body, when=datetime.now(timezone.utc) - timedelta(minutes=6)),
    "too new": lambda body: signed(body, when=datetime.now(timezone.utc) + timedelta(minutes=6)),
    "signature of another body": lambda body: signed(body + " "),
    "garbage signature": lambda body: {**signed(body), "webhook-signature": "v1"},
    "non-numeric timestamp": lambda body: {**signed(body), "webhook-timestamp": "yesterday"},
}


@pytest.mark.parametrize("case", BAD_SIGNATURES, ids=list(BAD_SIGNATURES))
def test_a_bad_signature_is_401_and_writes_nothing(http, db, api_without_redis_with_signatures, case) -> None:
    body = json.dumps(event_body(str(uuid.uuid4()), "processing"))
    before = db.execute("select count(*) from internal.webhook_inbox").fetchone()[0]
    response = post_event(http, api_without_redis_with_signatures.url, body, headers=BAD_SIGNATURES[case](body))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
    assert db.execute("select count(*) from internal.webhook_inbox").fetchone()[0] == before


def test_a_signed_request_still_needs_the_api_key(http, api_without_redis_with_signatures) -> None:
    body = json.dumps(event_body(str(uuid.uuid4()), "processing"))
    response = post_event(http, api_without_redis_with_signatures.url, body, key="wrong", headers=signed(body))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_postgres_down_is_503_with_retry_after(http, api_without_postgres) -> None:
    response = post_event(http, api_without_postgres.url, event_body(str(uuid.uuid4()), "processing"))
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "service_unavailable"
