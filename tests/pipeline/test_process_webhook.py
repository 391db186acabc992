"""POST /functions/v1/process-webhook over a socket (the `segbase api` process) with a real worker process: the
seed's curl, every bad input (4xx naming the field, nothing written), duplicates, the status machine."""
from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.factories import create_user
from tests.support.pipeline import (
    MASK_URL,
    balances,
    event_body,
    figures,
    post_event,
    submit_results,
    wait_until_final,
)


@pytest.fixture(autouse=True)
def _worker(pipeline_worker):
    return pipeline_worker


def inbox_count(db) -> int:
    return db.execute("select count(*) from internal.webhook_inbox").fetchone()[0]


def test_the_seeds_curl_with_the_key_completes_and_charges_once(settings, engine, api_server, http, db) -> None:
    user = create_user(settings, credits=3)
    [result_id] = submit_results(engine, user, 1)
    response = post_event(http, api_server.url, {"task_id": result_id, "status": "done", "mask_url": MASK_URL,
                                                 "labels": []})
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    assert response.json() == {"event_id": event_id, "status": "queued"}

    final = wait_until_final(db, [result_id])
    assert (final.done, final.states, final.charges) == (1, {"applied": 1}, 1)
    row = db.execute("select status::text, mask_image_url, labels, price from public.segmentation_results "
                     "where id = %s", (result_id,)).fetchone()
    assert row == ("done", MASK_URL, [], settings.credits_per_segmentation)
    assert balances(db, [user]) == {user.id: 3 - settings.credits_per_segmentation}
    charge = db.execute("select credits_used, metadata from public.usage_logs where user_id = %s "
                        "and action = 'segmentation'", (user.id,)).fetchone()
    assert charge == (settings.credits_per_segmentation,
                      {"result_id": result_id, "event_id": event_id, "source": "webhook"})


def test_the_rotated_key_is_accepted_too(settings, engine, api_server, http, db) -> None:
    user = create_user(settings, credits=1)
    [result_id] = submit_results(engine, user, 1)
    response = post_event(http, api_server.url, event_body(result_id, "processing"), key="test-webhook-key-rotated")
    assert response.status_code == 202, response.text
    assert wait_until_final(db, [result_id]).states == {"applied": 1}


BAD_AUTH = {
    "no key": ({}, "invalid_api_key"),
    "wrong key": ({"X-API-Key": "nope"}, "invalid_api_key"),
    "key prefix": ({"X-API-Key": "test-webhook"}, "invalid_api_key"),
    "key in another header": ({"apikey": "test-webhook-key"}, "invalid_api_key"),
}


@pytest.mark.parametrize("case", BAD_AUTH, ids=list(BAD_AUTH))
def test_a_request_without_the_key_is_401_and_writes_nothing(api_server, http, db, case) -> None:
    headers, code = BAD_AUTH[case]
    before = inbox_count(db)
    response = http.post(f"{api_server.url}/functions/v1/process-webhook", headers=headers,
                         json=event_body(str(uuid.uuid4())))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert inbox_count(db) == before


TASK = "7b0a4a59-5f83-4d4e-9a39-7a2b4fb7f0a1"
BAD_BODIES = {
    "not json": (b"{task_id: 1", 400, "invalid_json", None),
    "not utf-8": (b"\xff\xfe{}", 400, "invalid_json", None),
    "empty body": (b"", 400, "invalid_json", None),
    "a list": ([], 422, "validation_failed", "body"),
    "missing task_id": ({"status": "done", "mask_url": MASK_URL}, 422, "validation_failed", "task_id"),
    "task_id not a uuid": ({"task_id": "42", "status": "processing"}, 422, "validation_failed", "task_id"),
    "missing status": ({"task_id": TASK}, 422, "validation_failed", "status"),
    "unknown status": ({"task_id": TASK, "status": "finished"}, 422, "validation_failed", "status"),
    "pending is not an event": ({"task_id": TASK, "status": "pending"}, 422, "validation_failed", "status"),
    "done without mask_url": ({"task_id": TASK, "status": "done"}, 422, "validation_failed", "mask_url"),
    "http mask_url": ({"task_id": TASK, "status": "done", "mask_url": "http://cdn.example/m.png"}, 422,
                      "validation_failed", "mask_url"),
    "mask_url not a url": ({"task_id": TASK, "status": "done", "mask_url": "mask.png"}, 422, "validation_failed",
                           "mask_url"),
    "mask_url too long": ({"task_id": TASK, "status": "done", "mask_url": "https://a.example/" + "m" * 2100}, 422,
                          "validation_failed", "mask_url"),
    "labels not a list": ({"task_id": TASK, "status": "processing", "labels": {"cat": 1}}, 422,
                          "validation_failed", "labels"),
    "a label not an object": ({"task_id": TASK, "status": "processing", "labels": ["cat"]}, 422,
                              "validation_failed", "labels.0"),
    "too many labels": ({"task_id": TASK, "status": "processing", "labels": [{}] * 1001}, 422,
                        "validation_failed", "labels"),
    "labels too large": ({"task_id": TASK, "status": "processing", "labels": [{"x": "y" * 1000}] * 300}, 422,
                         "validation_failed", "labels"),
    "metadata not an object": ({"task_id": TASK, "status": "processing", "metadata": [1]}, 422,
                               "validation_failed", "metadata"),
    "metadata too large": ({"task_id": TASK, "status": "processing", "metadata": {"x": "y" * 70_000}}, 422,
                           "validation_failed", "metadata"),
    "too many metadata keys": ({"task_id": TASK, "status": "processing",
                                "metadata": {f"k{i}": i for i in range(101)}}, 422, "validation_failed", "metadata"),
    "error not a string": ({"task_id": TASK, "status": "error", "error": {"why": 1}}, 422, "validation_failed",
                           "error"),
    "error too long": ({"task_id": TASK, "status": "error", "error": "e" * 4001}, 422, "validation_failed", "error"),
    "body over 1 MiB": (b'{"pad": "' + b"x" * (1024 * 1024) + b'"}', 413, "payload_too_large", None),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_bad_input_is_a_precise_4xx_and_writes_nothing(api_server, http, db, case) -> None:
    body, status, code, field = BAD_BODIES[case]
    before = inbox_count(db)
    response = post_event(http, api_server.url, body if isinstance(body, bytes) else json.dumps(body))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert error["fields"][0]["field"] == field
        assert error["message"].startswith(f"{field}:")
    assert inbox_count(db) == before


def test_an_oversized_webhook_id_is_refused(api_server, http, db) -> None:
    before = inbox_count(db)
    response = post_event(http, api_server.url, event_body(TASK, "processing"), headers={"webhook-id": "w" * 257})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "webhook-id"
    assert inbox_count(db) == before


def test_five_identical_deliveries_in_sequence_charge_once(settings, engine, api_server, http, db) -> None:
    user = create_user(settings, credits=2)
    [result_id] = submit_results(engine, user, 1)
    responses = [post_event(http, api_server.url, event_body(result_id)) for _ in range(5)]
    assert [r.status_code for r in responses] == [202, 200, 200, 200, 200]
    event_id = responses[0].json()["event_id"]
    assert [r.json() for r in responses[1:]] == [{"event_id": event_id, "duplicate": True}] * 4
    final = wait_until_final(db, [result_id])
    assert (final.events, final.charges, final.double_charged) == (1, 1, 0)
    assert balances(db, [user]) == {user.id: 2 - settings.credits_per_segmentation}


def test_five_identical_deliveries_at_once_charge_once(settings, engine, api_server, http, db) -> None:
    user = create_user(settings, credits=2)
    [result_id] = submit_results(engine, user, 1)
    body = json.dumps(event_body(result_id))
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: post_event(http, api_server.url, body), range(5)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 202]
    assert len({r.json()["event_id"] for r in responses}) == 1
    final = wait_until_final(db, [result_id])
    assert (final.events, final.charges, final.double_charged) == (1, 1, 0)
    assert balances(db, [user]) == {user.id: 2 - settings.credits_per_segmentation}


def test_five_deliveries_with_distinct_webhook_ids_at_once_charge_once(settings, engine, api_server, http,
                                                                       db) -> None:
    """Five inbox rows race for one result: one applies, the others find it done (`duplicate`)."""
    user = create_user(settings, credits=2)
    [result_id] = submit_results(engine, user, 1)
    body = json.dumps(event_body(result_id))
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda n: post_event(http, api_server.url, body,
                                                       headers={"webhook-id": f"msg_{result_id}_{n}"}), range(5)))
    assert [r.status_code for r in responses] == [202] * 5
    final = wait_until_final(db, [result_id])
    assert final.states == {"applied": 1, "duplicate": 4}
    assert (final.charges, final.double_charged) == (1, 0)
    assert balances(db, [user]) == {user.id: 2 - settings.credits_per_segmentation}
    reasons = {row[0] for row in db.execute("select reason from internal.webhook_inbox where result_id = %s "
                                            "and state = 'duplicate'", (result_id,))}
    assert reasons == {"result is already done"}


def test_the_status_machine_through_the_webhook(settings, engine, api_server, http, db) -> None:
    """processing (metadata merged) → done (charged) → late processing ignored → error rejected → done duplicate;
    an error releases the reservation and lands in metadata.error; an unknown task_id is rejected."""
    user = create_user(settings, credits=5)
    first, second = submit_results(engine, user, 2)
    unknown = str(uuid.uuid4())

    def send_and_settle(body: dict, result_id: str) -> tuple[str, str | None]:
        response = post_event(http, api_server.url, body, headers={"webhook-id": uuid.uuid4().hex})
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]
        wait_until_final(db, [result_id])
        return db.execute("select state, reason from internal.webhook_inbox where id = %s", (event_id,)).fetchone()

    assert send_and_settle(event_body(first, "processing", metadata={"model": "sam2", "gpu": "a100"}),
                           first) == ("applied", None)
    assert send_and_settle(event_body(first, metadata={"gpu": "h100", "ms": 812}), first) == ("applied", None)
    row = db.execute("select status::text, metadata from public.segmentation_results where id = %s",
                     (first,)).fetchone()
    assert row == ("done", {"model": "sam2", "gpu": "h100", "ms": 812})
    state, reason = send_and_settle(event_body(first, "processing"), first)
    assert (state, reason) == ("ignored", "stale: processing arrived after the result became done")
    state, reason = send_and_settle(event_body(first, "error", error="oom"), first)
    assert state == "rejected" and "illegal transition: done -> error" in reason
    assert send_and_settle(event_body(first, mask_url="https://cdn.example/other.png"), first)[0] == "duplicate"

    assert send_and_settle(event_body(second, "error", error="CUDA out of memory"), second) == ("applied", None)
    row = db.execute("select status::text, metadata from public.segmentation_results where id = %s",
                     (second,)).fetchone()
    assert row == ("error", {"error": "CUDA out of memory"})

    state, reason = send_and_settle(event_body(unknown), unknown)
    assert state == "rejected" and reason.startswith("unknown result")

    assert figures(db, [first, second]).charges == 1
    summary = http.get(f"{api_server.url}/functions/v1/credit-check",
                       headers={"Authorization": f"Bearer {user.access_token}"}).json()
    assert (summary["credits"], summary["reserved"]) == (5 - settings.credits_per_segmentation, 0)
