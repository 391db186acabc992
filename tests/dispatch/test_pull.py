"""Pull dispatch over HTTP: claim-jobs, extend-lease and release-jobs against a live `segbase api` (and, for the
refusals, the app in process), concurrent pull workers, a worker that dies holding a lease, long-polls woken by a
notification, and the backend's webhooks finishing the job as before."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

import api
from schemas.settings import Settings
from tests.support.database import make_test_settings
from tests.support.dispatch import job, processes, reserved, result, submit
from tests.support.factories import create_user
from tests.support.metrics import metric
from tests.support.pipeline import event_body, post_event
from tests.support.processes import ROOT, wait_for

KEY = {"X-API-Key": "test-webhook-key"}


def claim(http: httpx.Client, base: str, **body) -> httpx.Response:
    return http.post(f"{base}/functions/v1/claim-jobs", json={"worker_id": "w1", **body}, headers=KEY)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def webhook_worker(dispatch_settings: Settings):
    """A worker applying process-webhook events on the dispatch database."""
    with processes() as running:
        yield running.worker(dispatch_settings, "dispatch-webhook-worker", concurrency=1)


def test_claim_returns_leased_jobs_in_the_push_shape(dispatch_settings, dispatch_engine, dispatch_api, http, db):
    user = create_user(dispatch_settings, credits=5)
    submitted = submit(dispatch_engine, user, 3, prompt="a bird")
    response = claim(http, dispatch_api.url, max=2, lease_seconds=60)
    assert response.status_code == 200, response.text
    jobs = response.json()["jobs"]
    assert [j["job_id"] for j in jobs] == submitted[:2]  # oldest first
    first = jobs[0]
    assert first["user_id"] == user.id and first["text_prompt"] == "a bird" and first["attempt"] == 1
    assert first["callback_url"] == f"{dispatch_settings.public_url}/functions/v1/process-webhook"
    assert first["mask_path"] == f"masks/{user.id}/{first['job_id']}.png"
    assert first["lease_id"] and first["lease_expires_at"]
    assert job(db, first["job_id"]).state == "leased" and job(db, first["job_id"]).worker_id == "w1"

    extended = http.post(f"{dispatch_api.url}/functions/v1/extend-lease", headers=KEY,
                         json={"lease_ids": [first["lease_id"], jobs[1]["lease_id"]], "lease_seconds": 600}).json()
    assert {j["job_id"] for j in extended["jobs"]} == set(submitted[:2]) and extended["lost"] == []
    assert extended["jobs"][0]["lease_expires_at"] > first["lease_expires_at"]

    released = http.post(f"{dispatch_api.url}/functions/v1/release-jobs", headers=KEY,
                         json={"lease_ids": [first["lease_id"]]}).json()
    assert released == {"released": [first["job_id"]], "lost": []}
    again = claim(http, dispatch_api.url, max=5).json()["jobs"]
    assert {j["job_id"] for j in again} == {first["job_id"], submitted[2]}
    lost = http.post(f"{dispatch_api.url}/functions/v1/extend-lease", headers=KEY,
                     json={"lease_ids": [first["lease_id"]], "lease_seconds": 60}).json()
    assert lost == {"jobs": [], "lost": [first["lease_id"]]}


def test_a_long_poll_is_woken_by_the_insert(dispatch_settings, dispatch_engine, dispatch_api, http, db):
    user = create_user(dispatch_settings, credits=5)
    answer: dict = {}

    def waiting_claim() -> None:
        started = time.monotonic()
        answer["response"] = claim(http, dispatch_api.url, max=1, wait_seconds=25)
        answer["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=waiting_claim)
    thread.start()
    # The API's listener connects for the first waiting claim; only then is the job submitted.
    wait_for(lambda: db.execute("select count(*) from pg_stat_activity "
                                "where application_name = 'segbase-dispatch-signal'").fetchone()[0] > 0,
             message="the claim to wait on its notification listener")
    [job_id] = submit(dispatch_engine, user)
    thread.join(timeout=60)
    assert [j["job_id"] for j in answer["response"].json()["jobs"]] == [job_id]
    assert answer["elapsed"] < 25  # answered on the notification, not at the end of its wait


def test_a_long_poll_with_nothing_ready_answers_empty(dispatch_api, http):
    response = claim(http, dispatch_api.url, max=1, wait_seconds=0.5)
    assert response.status_code == 200 and response.json() == {"jobs": []}


def test_three_concurrent_pull_workers_never_share_a_job(dispatch_settings, dispatch_engine, dispatch_api, db):
    user = create_user(dispatch_settings, credits=100)
    submitted = set(submit(dispatch_engine, user, 60))
    leased: dict[str, list[str]] = {}

    def worker(name: str) -> None:
        mine: list[str] = []
        with httpx.Client(timeout=60) as client:
            while True:
                jobs = client.post(f"{dispatch_api.url}/functions/v1/claim-jobs", headers=KEY,
                                   json={"max": 4, "worker_id": name, "wait_seconds": 1}).json()["jobs"]
                if not jobs:
                    break
                mine += [j["job_id"] for j in jobs]
        leased[name] = mine

    threads = [threading.Thread(target=worker, args=(f"gpu-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    every = [job_id for mine in leased.values() for job_id in mine]
    assert len(every) == len(submitted) and set(every) == submitted
    owners = dict(db.execute("select result_id::text, worker_id from internal.dispatch_jobs "
                             "where result_id = any(%s::uuid[])", (list(submitted),)).fetchall())
    assert all(owners[job_id] == name for name, mine in leased.items() for job_id in mine)


def test_a_worker_dying_with_a_lease_gives_the_job_to_another(dispatch_settings, dispatch_engine, dispatch_api,
                                                              http, db):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    [held] = claim(http, dispatch_api.url, max=1, lease_seconds=5, worker_id="dies").json()["jobs"]
    # The worker dies: no extension. A waiting claim is woken when the lease expires (the next due time).
    [taken] = claim(http, dispatch_api.url, max=1, lease_seconds=60, worker_id="survivor",
                    wait_seconds=25).json()["jobs"]
    assert taken["job_id"] == job_id and taken["lease_id"] != held["lease_id"] and taken["attempt"] == 2
    assert (job(db, job_id).worker_id, job(db, job_id).lease_expiries) == ("survivor", 1)
    lost = http.post(f"{dispatch_api.url}/functions/v1/extend-lease", headers=KEY,
                     json={"lease_ids": [held["lease_id"]], "lease_seconds": 60}).json()
    assert lost["lost"] == [held["lease_id"]]
    assert metric(http.get(f"{dispatch_api.url}/metrics").text, "segbase_dispatch_lease_expiries_total") >= 1


def test_the_backends_webhooks_finish_a_pulled_job(dispatch_settings, dispatch_engine, dispatch_api, http, db,
                                                   webhook_worker):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    [leased] = claim(http, dispatch_api.url, max=1).json()["jobs"]
    assert post_event(http, dispatch_api.url, event_body(job_id, "processing")).status_code == 202
    wait_for(lambda: result(db, job_id)["status"] == "processing", message="processing")
    assert job(db, job_id).state == "leased"
    assert post_event(http, dispatch_api.url, event_body(job_id, "done")).status_code == 202
    wait_for(lambda: job(db, job_id).state == "finished", message="the job to finish")
    assert job(db, job_id).outcome == "done" and reserved(db, user.id) == 0
    assert http.post(f"{dispatch_api.url}/functions/v1/extend-lease", headers=KEY,
                     json={"lease_ids": [leased["lease_id"]]}).json()["lost"] == [leased["lease_id"]]


def test_a_cancelled_leased_job_is_lost_to_its_worker_and_its_late_done_is_never_charged(
        dispatch_settings, dispatch_engine, dispatch_api, http, db, webhook_worker):
    user = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, user)
    [leased] = claim(http, dispatch_api.url, max=1).json()["jobs"]
    assert db.execute("select internal.cancel_dispatch_job(%s)", (job_id,)).fetchone()[0] == "cancelled"
    assert http.post(f"{dispatch_api.url}/functions/v1/extend-lease", headers=KEY,
                     json={"lease_ids": [leased["lease_id"]]}).json()["lost"] == [leased["lease_id"]]
    assert post_event(http, dispatch_api.url, event_body(job_id, "done")).status_code == 202
    wait_for(lambda: db.execute("select state from internal.webhook_inbox where result_id = %s",
                                (job_id,)).fetchone() == ("rejected",), message="the late done to be rejected")
    assert result(db, job_id)["metadata"]["error"] == "cancelled"
    assert db.execute("select count(*) from public.usage_logs where metadata ->> 'result_id' = %s",
                      (job_id,)).fetchone()[0] == 0
    assert reserved(db, user.id) == 0


# --- refusals (the app in process: no live server needed) -----------------------------------------------------
@pytest.fixture(scope="module")
def app_client(dispatch_settings: Settings):
    settings = make_test_settings(dispatch_settings.database_url, f"{dispatch_settings.instance_id}a",
                                  dispatch_mode="pull", dispatch_claim_max_jobs=10, dispatch_max_wait_seconds=5,
                                  dispatch_max_waiters=1)
    app = api.create_app(settings)
    yield app
    if app.extensions["segbase"].dispatch_signal is not None:
        app.extensions["segbase"].dispatch_signal.close()
    app.extensions["segbase"].engine.dispose()


@pytest.mark.parametrize(("body", "field"), [
    ({"worker_id": "w", "max": 11}, "max"),
    ({"worker_id": "w", "max": 0}, "max"),
    ({"worker_id": "w", "lease_seconds": 2}, "lease_seconds"),
    ({"worker_id": "w", "lease_seconds": 99_999}, "lease_seconds"),
    ({"worker_id": "w", "wait_seconds": 6}, "wait_seconds"),
    ({"worker_id": ""}, "worker_id"),
    ({"worker_id": "has space"}, "worker_id"),
    ({}, "worker_id"),
    ({"worker_id": "w", "maximum": 3}, "maximum"),
])
def test_bad_claims_are_422_naming_the_field(app_client, body, field):
    response = app_client.test_client().post("/functions/v1/claim-jobs", json=body, headers=KEY)
    assert response.status_code == 422, response.text
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed" and field in {f["field"] for f in error["fields"]}


def test_claims_need_the_api_key_and_pull_mode(app_client, dispatch_settings):
    client = app_client.test_client()
    assert client.post("/functions/v1/claim-jobs", json={"worker_id": "w"}).status_code == 401
    assert client.post("/functions/v1/claim-jobs", json={"worker_id": "w"},
                       headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.post("/functions/v1/claim-jobs", data="{not json", headers=KEY).status_code == 400
    assert client.post("/functions/v1/extend-lease", json={"lease_ids": ["nope"]},
                       headers=KEY).status_code == 422
    off = api.create_app(make_test_settings(dispatch_settings.database_url, "toff", dispatch_mode="off"))
    response = off.test_client().post("/functions/v1/claim-jobs", json={"worker_id": "w"}, headers=KEY)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "dispatch_mode"
    off.extensions["segbase"].engine.dispose()


def test_long_polls_beyond_the_limit_are_429(app_client):
    services = app_client.extensions["segbase"]
    first: dict = {}
    waiter = threading.Thread(target=lambda: first.update(response=app_client.test_client().post(
        "/functions/v1/claim-jobs", json={"worker_id": "w", "wait_seconds": 5}, headers=KEY)))
    waiter.start()
    wait_for(lambda: services.dispatch_signal is not None and services.dispatch_signal.waiters == 1,
             message="the first claim to wait")
    second = app_client.test_client().post("/functions/v1/claim-jobs", json={"worker_id": "w", "wait_seconds": 5},
                                           headers=KEY)
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert "DISPATCH_MAX_WAITERS" in second.get_json()["error"]["message"]
    # Without waiting, a claim never needs a slot.
    assert app_client.test_client().post("/functions/v1/claim-jobs", json={"worker_id": "w"},
                                         headers=KEY).status_code == 200
    waiter.join(timeout=30)
    assert first["response"].status_code == 200


def test_the_api_master_leaves_psycopg_to_its_gevent_workers():
    """psycopg picks its wait function when first imported: imported by `segbase api`'s gunicorn master (before the
    workers fork and gevent patches them) it would block a whole worker on every query, and freeze it while a
    claim-jobs long-poll waits for a notification."""
    code = ("import sys, segbase.cli, segbase.preflight, segbase.server\n"
            "from segbase.preflight import port_problem\n"
            "print('psycopg' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
