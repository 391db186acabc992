"""Bad input is a 4xx in the surface's shape, names the problem, changes nothing and logs no traceback: the one JSON
check at the parse (MAX_JSON_DEPTH, NUL characters, lone surrogates, NaN), bodies over MAX_REQUEST_BYTES with or
without a Content-Length, and `X-Content-Type-Options: nosniff` on every response."""
from __future__ import annotations

import json
import uuid

import pytest
from flask import jsonify, request

from api import create_app
from api.http import JsonInputError, check_json_value, parse_json
from tests.support.database import make_test_settings
from tests.support.factories import create_user
from tests.support.logs import LogWindow
from tests.support.pipeline import event_body, post_event, submit_results

WEBHOOK_KEY = {"X-API-Key": "test-webhook-key", "Content-Type": "application/json"}


def nested(depth: int) -> object:
    """A value whose nesting is `depth` containers deep."""
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def inbox_count(db) -> int:
    return db.execute("select count(*) from internal.webhook_inbox").fetchone()[0]


# --- the check as a plain function (what realtime frames reuse) ----------------------------------------------------

def test_depth_up_to_the_limit_is_accepted_and_one_more_is_refused_naming_where() -> None:
    assert parse_json(json.dumps(nested(64)), max_depth=64) == nested(64)
    with pytest.raises(JsonInputError) as too_deep:
        parse_json(json.dumps(nested(65)), max_depth=64)
    assert too_deep.value.problem == "too_deep" and too_deep.value.status == 400
    assert too_deep.value.field.startswith("k.0.k.0.")
    assert "MAX_JSON_DEPTH" in too_deep.value.message


def test_nesting_past_pythons_recursion_limit_is_too_deep_not_a_crash() -> None:
    with pytest.raises(JsonInputError) as refused:
        parse_json(b"[" * 100_000 + b"]" * 100_000, max_depth=64)
    assert refused.value.problem == "too_deep"


@pytest.mark.parametrize("raw, field", [
    ('{"a": "x\\u0000y"}', "a"),
    ('{"a": {"b\\u0000": 1}}', "a.b\x00"),
    ('{"a": [1, "\\u0000"]}', "a.1"),
    ('"\\u0000"', "body"),
])
def test_a_nul_anywhere_is_refused_naming_the_field(raw: str, field: str) -> None:
    with pytest.raises(JsonInputError) as refused:
        parse_json(raw.encode(), max_depth=64)
    assert (refused.value.problem, refused.value.field, refused.value.status) == ("nul_character", field, 422)
    assert refused.value.code == "validation_failed"


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    assert parse_json(b'{"a": "\\\\u0000"}', max_depth=64) == {"a": "\\u0000"}


@pytest.mark.parametrize("raw", [b'{"a": "\\ud800"}', b'{"a": "\\udfff x"}', b'{"\\udc00": 1}'])
def test_a_lone_surrogate_is_refused(raw: bytes) -> None:
    with pytest.raises(JsonInputError) as refused:
        parse_json(raw, max_depth=64)
    assert refused.value.problem == "invalid_unicode"


def test_a_surrogate_pair_is_fine() -> None:
    assert parse_json(b'{"a": "\\ud83d\\ude00"}', max_depth=64) == {"a": "\N{GRINNING FACE}"}


@pytest.mark.parametrize("raw", [b"NaN", b'{"a": Infinity}', b"[-Infinity]", b"1e999", b"\xff", b"{", b"",
                                 '"\ud800"'.encode("utf-8", "surrogatepass")])
def test_what_is_not_strict_utf8_json_is_invalid_json(raw: bytes) -> None:
    with pytest.raises(JsonInputError) as refused:
        parse_json(raw, max_depth=64)
    assert (refused.value.problem, refused.value.status) == ("invalid_json", 400)


def test_check_json_value_walks_an_already_parsed_value() -> None:
    check_json_value({"a": ["fine"]}, max_depth=2)
    with pytest.raises(JsonInputError):
        check_json_value({"a": ["fine", {"b": 1}]}, max_depth=2)


# --- the webhook: a 4xx tells the sender at once that the event was not taken ---------------------------------------

@pytest.mark.parametrize("extra, field", [
    ({"metadata": {"note": "a\u0000b"}}, "metadata.note"),
    ({"metadata": {"k\u0000": 1}}, "metadata.k\u0000"),
    ({"labels": [{"label": "cat\u0000"}]}, "labels.0.label"),
    ({"error": "boom\u0000"}, "error"),
])
def test_webhook_nul_is_422_naming_the_field_and_stores_nothing(settings, engine, api_server, http, db,
                                                               extra, field) -> None:
    user = create_user(settings, credits=1)
    [result_id] = submit_results(engine, user, 1)
    before, logs = inbox_count(db), LogWindow(api_server)
    response = post_event(http, api_server.url, json.dumps(event_body(result_id, "processing", **extra)))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["fields"] == [{"field": field, "message": "must not contain a NUL character (\\u0000)"}]
    assert inbox_count(db) == before
    assert logs.tracebacks() == []


def test_webhook_too_deep_is_400_and_stores_nothing(settings, engine, api_server, http, db) -> None:
    user = create_user(settings, credits=1)
    [result_id] = submit_results(engine, user, 1)
    before, logs = inbox_count(db), LogWindow(api_server)
    body = event_body(result_id, "processing", metadata={"deep": nested(settings.max_json_depth)})
    response = post_event(http, api_server.url, json.dumps(body))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "json_too_deep"
    assert "MAX_JSON_DEPTH" in response.json()["error"]["message"]
    assert inbox_count(db) == before
    assert logs.tracebacks() == []


def test_webhook_lone_surrogate_is_422(settings, engine, api_server, http, db) -> None:
    user = create_user(settings, credits=1)
    [result_id] = submit_results(engine, user, 1)
    before, logs = inbox_count(db), LogWindow(api_server)
    raw = json.dumps(event_body(result_id, "error")).replace('"error"}', '"error", "error": "\\udead"}')
    response = post_event(http, api_server.url, raw)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"][0]["field"] == "error"
    assert inbox_count(db) == before
    assert logs.tracebacks() == []


# --- bodies over MAX_REQUEST_BYTES ----------------------------------------------------------------------------------

def test_a_chunked_body_over_max_request_bytes_is_413_not_truncated(settings, engine, api_server, http, db) -> None:
    """Truncated at MAX_REQUEST_BYTES this body is a valid event; it must be refused whole."""
    user = create_user(settings, credits=1)
    [result_id] = submit_results(engine, user, 1)
    event = json.dumps(event_body(result_id, "processing")).encode()
    padding = settings.max_request_bytes - len(event)

    def chunks():
        yield event
        for _ in range(padding // 4096 + 2):
            yield b" " * 4096

    before = inbox_count(db)
    response = http.post(f"{api_server.url}/functions/v1/process-webhook", content=chunks(), headers=WEBHOOK_KEY)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    assert inbox_count(db) == before

    exactly_at_the_limit = event + b" " * padding
    response = http.post(f"{api_server.url}/functions/v1/process-webhook", content=iter([exactly_at_the_limit]),
                         headers=WEBHOOK_KEY)
    assert response.status_code == 202, response.text


def test_a_chunked_auth_body_over_the_limit_is_413_in_gotrues_shape(settings, api_server, http, anon_key) -> None:
    def chunks():
        yield b'{"email": "a@example.com", "password": "'
        for _ in range(settings.max_request_bytes // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    response = http.post(f"{api_server.url}/auth/v1/token?grant_type=password", content=chunks(),
                         headers={"apikey": anon_key, "Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert set(response.json()) == {"code", "message"}


# --- nosniff ---------------------------------------------------------------------------------------------------------

def test_every_response_says_nosniff(settings, api_server, http, anon_key) -> None:
    user = create_user(settings)
    responses = [
        http.get(f"{api_server.url}/healthz"),
        http.get(f"{api_server.url}/no/such/path"),
        http.options(f"{api_server.url}/rest/v1/projects", headers={"Origin": "https://app.example"}),
        http.get(f"{api_server.url}/auth/v1/user", headers=user.headers(anon_key)),
        http.get(f"{api_server.url}/auth/v1/user", headers={"apikey": "nope"}),
        http.get(f"{api_server.url}/rest/v1/projects", headers=user.headers(anon_key)),
        http.get(f"{api_server.url}/rest/v1/nope", headers=user.headers(anon_key)),
        http.post(f"{api_server.url}/functions/v1/process-webhook", content=b"{"),
        post_event(http, api_server.url, {"task_id": str(uuid.uuid4()), "status": "processing"}),
        http.get(f"{api_server.url}/functions/v1/credit-check", headers=user.headers(anon_key)),
    ]
    for response in responses:
        assert response.headers.get("X-Content-Type-Options") == "nosniff", (response.request.url, response.status_code)


# --- request.get_json() is held to the same check ---------------------------------------------------------------

def test_get_json_refuses_with_the_typed_error_and_keeps_flasks_silent_contract() -> None:
    app = create_app(make_test_settings("postgresql://postgres@127.0.0.1:5432/postgres", "tgetjson"))
    app.add_url_rule("/probe/json", "json", lambda: jsonify(body=request.get_json()), methods=["POST"])
    app.add_url_rule("/probe/silent", "silent", lambda: jsonify(body=request.get_json(silent=True)),
                     methods=["POST"])
    client = app.test_client()
    try:
        nul = client.post("/probe/json", data=b'{"a": {"b": "x\\u0000"}}', content_type="application/json")
        assert nul.status_code == 422 and nul.get_json()["error"]["fields"][0]["field"] == "a.b"
        deep = client.post("/probe/json", data=b"[" * 65 + b"]" * 65, content_type="application/json")
        assert deep.status_code == 400 and deep.get_json()["error"]["code"] == "json_too_deep"
        broken = client.post("/probe/json", data=b"{", content_type="application/json")
        assert broken.status_code == 400 and broken.get_json()["error"]["code"] == "invalid_json"
        silent = client.post("/probe/silent", data=b'"\\u0000"', content_type="application/json")
        assert silent.status_code == 200 and silent.get_json() == {"body": None}
        fine = client.post("/probe/json", data=b'{"a": [1, "x"]}', content_type="application/json")
        assert fine.get_json() == {"body": {"a": [1, "x"]}}
    finally:
        app.extensions["segbase"].engine.dispose()


def test_a_request_id_is_echoed_only_when_it_looks_like_one() -> None:
    app = create_app(make_test_settings("postgresql://postgres@127.0.0.1:5432/postgres", "treqid"))
    client = app.test_client()
    try:
        assert client.get("/healthz", headers={"X-Request-Id": "abc-123.4:5"}).headers["X-Request-Id"] == \
            "abc-123.4:5"
        for hostile in ("x" * 129, "a b", "<script>", "é"):
            echoed = client.get("/healthz", headers={"X-Request-Id": hostile}).headers["X-Request-Id"]
            assert echoed != hostile and len(echoed) == 32
    finally:
        app.extensions["segbase"].engine.dispose()
