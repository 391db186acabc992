"""The result URL rule: https only (http when RESULT_URL_ALLOW_HTTP), no whitespace, controls or backslashes, a
host and no credentials, bounded length — in Python for the webhook (plus the WEBHOOK_MASK_URL_HOSTS allow-list,
compared with the host a browser would load) and in PostgreSQL for every writer of `source_image_url` and
`mask_image_url`. The two agree on every vector, so a webhook accepted is never refused when it is applied."""
from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy.exc import DBAPIError

from schemas.urls import ResultUrlPolicy, UrlRefused, normalize_host
from tests.support.auth import start_api
from tests.support.db import as_service, sqlstate
from tests.support.factories import create_user
from tests.support.pipeline import event_body, post_event, submit_results

# (url, allowed by the syntax rule with https only) — the WHATWG cases that matter for "where does it load from".
VECTORS = [
    ("https://cdn.example/m.png", True),
    ("HTTPS://CDN.example/m.png", True),
    ("https://cdn.example", True),
    ("https://cdn.example:8443/m.png?x=1#f", True),
    ("https://[::1]/m.png", True),
    ("https://127.0.0.1/m.png", True),
    ("https://xn--bcher-kva.example/m.png", True),
    ("https://bücher.example/m.png", True),
    ("https://cdn.example/a%20b.png", True),
    ("http://cdn.example/m.png", False),
    ("javascript:alert(1)", False),
    ("data:image/png;base64,AAAA", False),
    ("ftp://cdn.example/m.png", False),
    ("//cdn.example/m.png", False),
    ("https:/cdn.example/m.png", False),
    ("https:cdn.example/m.png", False),
    ("https:///cdn.example/m.png", False),
    ("https://:443/m.png", False),
    ("https://evil.example\\@cdn.example/m.png", False),
    ("https://cdn.example\\@evil.example/m.png", False),
    ("https://user:pw@cdn.example/m.png", False),
    ("https://@cdn.example/m.png", False),
    ("https://cdn.example@evil.example/m.png", False),
    (" https://cdn.example/m.png", False),
    ("https://cdn.example/m.png ", False),
    ("https://cdn.ex\tample/m.png", False),
    ("https://cdn.example/\nm.png", False),
    ("https://cdn.example/m\u00a0.png", False),
    ("https://cdn.example/m\u200b.png", False),
    ("https://cdn.example/m\u202e.png", False),
    ("https://cdn.example/m\ufeff.png", False),
    ("https://cdn.example/m\x7f.png", False),
    ("https://cdn.example/" + "m" * 2100, False),
    ("", False),
]
HTTPS_ONLY = ResultUrlPolicy.build(allow_http=False, max_length=2048)


def allowed(policy: ResultUrlPolicy, url: str) -> bool:
    try:
        policy.check(url)
        return True
    except UrlRefused:
        return False


@pytest.mark.parametrize("url, expected", VECTORS, ids=[repr(v[0])[:60] for v in VECTORS])
def test_python_and_postgresql_agree_on_each_vector(owner_conn, url: str, expected: bool) -> None:
    in_database = owner_conn.execute("select internal.is_allowed_result_url(%s)", (url,)).fetchone()[0]
    assert (allowed(HTTPS_ONLY, url), in_database) == (expected, expected)


def test_http_is_allowed_only_when_the_setting_says_so(owner_conn) -> None:
    assert allowed(ResultUrlPolicy.build(allow_http=True, max_length=2048), "http://cdn.example/m.png")
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("update internal.config set value = 'true' where key = 'result_url_allow_http'")
        assert owner_conn.execute("select internal.is_allowed_result_url('http://cdn.example/m.png')").fetchone()[0]
        assert not owner_conn.execute("select internal.is_allowed_result_url('ftp://cdn.example/m')").fetchone()[0]


def test_the_allow_list_compares_the_host_a_browser_would_load() -> None:
    policy = ResultUrlPolicy.build(allow_http=False, max_length=2048, allowed_hosts=("cdn.example", "Bücher.example"))
    assert allowed(policy, "https://cdn.example/m.png")
    assert allowed(policy, "https://CDN.EXAMPLE./m.png")
    assert allowed(policy, "https://xn--bcher-kva.example/m.png")
    assert allowed(policy, "https://ｃｄｎ.example/m.png")  # full-width letters: a browser loads cdn.example
    assert not allowed(policy, "https://evil.example/m.png")
    assert not allowed(policy, "https://cdn.example.evil.example/m.png")
    assert not allowed(policy, "https://evil.example#@cdn.example/m.png")
    assert not allowed(policy, "https://evil.example?@cdn.example/m.png")
    with pytest.raises(UrlRefused) as refused:
        policy.check("https://evil.example\\@cdn.example/m.png")
    assert "backslash" in str(refused.value)
    assert normalize_host("CDN.Example.") == "cdn.example"


# --- every writer is held to the rule ------------------------------------------------------------------------------

BAD_SOURCES = ["javascript:alert(1)", "http://img.example/a.png", "https://img.example/a b.png",
               "https://evil.example\\@img.example/a.png", "https://u:p@img.example/a.png", "img.png"]


@pytest.mark.parametrize("source", BAD_SOURCES)
def test_the_data_api_refuses_a_bad_source_image_url_with_400_and_writes_nothing(
        settings, api_server, http, db, anon_key, source) -> None:
    user = create_user(settings, credits=5)
    result_id = str(uuid.uuid4())
    response = http.post(f"{api_server.url}/rest/v1/segmentation_results", headers=user.headers(anon_key),
                         json={"id": result_id, "user_id": user.id, "source_image_url": source})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "23514" and "source_image_url" in body["message"]
    assert db.execute("select count(*) from public.segmentation_results where id = %s",
                      (result_id,)).fetchone()[0] == 0


def test_service_role_sql_is_held_to_the_rule_on_insert_and_update(settings, engine) -> None:
    user = create_user(settings, credits=5)
    with pytest.raises(DBAPIError) as refused:
        as_service(engine, "insert into public.segmentation_results (user_id, source_image_url) "
                           "values (:u, 'http://img.example/a.png')", {"u": user.id})
    assert sqlstate(refused.value) == "23514"
    [result_id] = submit_results(engine, user, 1)
    with pytest.raises(DBAPIError) as bad_mask:
        as_service(engine, "update public.segmentation_results set status = 'done', "
                           "mask_image_url = 'https://cdn.example/m.png\n' where id = :id", {"id": result_id})
    assert sqlstate(bad_mask.value) == "23514"
    as_service(engine, "update public.segmentation_results set status = 'done', "
                       "mask_image_url = 'https://cdn.example/m.png' where id = :id", {"id": result_id})


# --- the webhook --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def allow_listed_api(settings):
    api = start_api(settings, webhook_mask_url_hosts=["cdn.example"])
    yield api
    api.stop()


@pytest.mark.parametrize("mask_url", ["https://evil.example\\@cdn.example/m.png", "https://cdn.example\t/m.png",
                                      "https://cdn.example@evil.example/m.png", "https://evil.example/m.png",
                                      " https://cdn.example/m.png"])
def test_the_webhook_refuses_a_mask_url_that_would_load_from_elsewhere(
        settings, engine, allow_listed_api, http, db, mask_url) -> None:
    user = create_user(settings, credits=1)
    [result_id] = submit_results(engine, user, 1)
    before = db.execute("select count(*) from internal.webhook_inbox").fetchone()[0]
    response = post_event(http, allow_listed_api.url, json.dumps(event_body(result_id, "done", mask_url=mask_url)))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"][0]["field"] == "mask_url"
    assert db.execute("select count(*) from internal.webhook_inbox").fetchone()[0] == before


def test_the_webhook_accepts_the_allow_listed_host_in_any_spelling(settings, engine, allow_listed_api, http) -> None:
    user = create_user(settings, credits=1)
    [result_id] = submit_results(engine, user, 1)
    response = post_event(http, allow_listed_api.url, event_body(result_id, "done",
                                                                 mask_url="https://CDN.Example./m.png"))
    assert response.status_code == 202, response.text
