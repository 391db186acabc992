"""/console over real HTTP against a live `segbase api`: sign-in and its refusals, the cookie, CSRF, the operator
re-read on every request, and each page's actions with the status and message a wrong input gets."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from psycopg.types.json import Jsonb

from db import console as console_db
from db.uow import Caller, unit_of_work
from tests.support.auth import start_api
from tests.support.console import ConsoleClient, audit_rows, make_operator
from tests.support.factories import create_user
from tests.support.pipeline import submit_results


@pytest.fixture(scope="module")
def operator(settings, engine):
    return make_operator(settings, engine, password="operator password 1")


@pytest.fixture
def browser(api_server) -> Iterator[ConsoleClient]:
    client = ConsoleClient(api_server.url)
    yield client
    client.close()


@pytest.fixture
def signed_in(browser, operator) -> ConsoleClient:
    response = browser.sign_in(operator.email, operator.password)
    assert response.status_code == 303, response.text
    return browser


def session_count(owner_conn, user_id: str) -> int:
    return owner_conn.execute("select count(*) from auth.sessions where user_id = %s", (user_id,)).fetchone()[0]


def test_a_page_asks_for_sign_in_first(browser):
    response = browser.get("/console/users")
    assert response.status_code == 302
    assert response.headers["location"] == "/console/login?next=/console/users"


def test_an_operator_signs_in_and_lands_where_they_were_going(browser, operator, owner_conn):
    before = session_count(owner_conn, operator.id)
    response = browser.sign_in(operator.email, operator.password, next="/console/users")
    assert response.status_code == 303 and response.headers["location"] == "/console/users"
    cookie = next(value for name, value in response.headers.multi_items()
                  if name == "set-cookie" and value.startswith("segbase-console="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "samesite"} <= attributes
    assert "Path=/console" in cookie and "SameSite=Strict" in cookie
    assert session_count(owner_conn, operator.id) == before + 1
    page = browser.get("/console/users")
    assert page.status_code == 200 and operator.email in page.text
    assert owner_conn.execute("select count(*) from internal.operator_audit where operator_id = %s "
                              "and action = 'console.sign_in'", (operator.id,)).fetchone()[0] >= 1
    assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in \
        page.headers["content-security-policy"]


def test_the_next_parameter_never_leaves_the_console(browser, operator):
    response = browser.sign_in(operator.email, operator.password, next="//evil.example/console/")
    assert response.headers["location"] == "/console/overview"


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(browser, operator):
    wrong = browser.sign_in(operator.email, "not the password")
    unknown = browser.sign_in(f"nobody-{uuid.uuid4().hex[:6]}@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 400
    assert "Invalid email or password" in wrong.text and "Invalid email or password" in unknown.text
    assert "set-cookie" not in {name for name, value in wrong.headers.multi_items()
                                if value.startswith("segbase-console=")}


def test_a_non_operator_gets_403_and_no_session(settings, browser, owner_conn):
    user = create_user(settings)
    before = session_count(owner_conn, user.id)
    response = browser.sign_in(user.email, user.password)
    assert response.status_code == 403 and "not a console operator" in response.text
    assert session_count(owner_conn, user.id) == before
    assert browser.get("/console/users").status_code == 302  # still not signed in


def test_a_revoked_operator_is_refused_on_the_next_request_and_sees_no_data(settings, engine, api_server):
    other = make_operator(settings, engine)
    victim = create_user(settings, email=f"victim-{uuid.uuid4().hex[:6]}@example.com")
    client = ConsoleClient(api_server.url)
    try:
        assert client.sign_in(other.email, other.password).status_code == 303
        assert victim.email in client.get(f"/console/users?q={victim.email}").text
        with unit_of_work(engine, Caller.service()) as uow:
            console_db.set_operator_role(uow=uow, email=other.email, operator=False)
        refused = client.get(f"/console/users?q={victim.email}")
        assert refused.status_code == 403 and victim.email not in refused.text
        assert "not a console operator" in refused.text
    finally:
        client.close()


def test_forms_without_the_csrf_token_are_refused_and_change_nothing(settings, signed_in, owner_conn):
    user = create_user(settings, credits=5)
    for data in ({}, {"csrf_token": "forged"}):
        response = signed_in.http.post(f"/console/users/{user.id}/credits",
                                       data={"direction": "grant", "amount": "100", "reason": "csrf", **data})
        assert response.status_code == 403 and "CSRF token is missing or wrong" in response.text
    assert owner_conn.execute("select credits from public.users_profile where id = %s", (user.id,)).fetchone()[0] == 5


def test_sign_in_needs_its_csrf_cookie(browser, operator):
    response = browser.http.post("/console/login", data={"csrf_token": "x" * 43, "email": operator.email,
                                                         "password": operator.password})
    assert response.status_code == 403 and "CSRF" in response.text


def test_a_cross_origin_post_is_refused(signed_in, operator):
    page = signed_in.get(f"/console/users/{operator.id}")
    response = signed_in.http.post("/console/logout", headers={"Origin": "https://evil.example"},
                                   data={"csrf_token": page.text.split('name="csrf_token" value="')[1].split('"')[0]})
    assert response.status_code == 403


def test_grant_and_revoke_credits_from_the_user_page(settings, engine, signed_in, owner_conn):
    user = create_user(settings, credits=10)
    submit_results(engine, user, 3)
    page = f"/console/users/{user.id}"
    granted = signed_in.post_form(page, f"{page}/credits", {"direction": "grant", "amount": "15",
                                                            "reason": "goodwill"})
    assert granted.status_code == 303 and granted.headers["location"].startswith(page)
    shown = signed_in.get(granted.headers["location"]).text
    assert "Credits granted." in shown and 'data-metric="credits">25<' in shown and "goodwill" in shown
    too_much = signed_in.post_form(page, f"{page}/credits", {"direction": "revoke", "amount": "23",
                                                             "reason": "chargeback"})
    assert too_much.status_code == 409 and "at most 22 can be revoked" in too_much.text
    assert owner_conn.execute("select credits from public.users_profile where id = %s", (user.id,)).fetchone()[0] == 25


@pytest.mark.parametrize(("data", "message"), [
    ({"direction": "grant", "amount": "0", "reason": "x"}, "amount must be a whole number"),
    ({"direction": "grant", "amount": "ten", "reason": "x"}, "amount must be a whole number"),
    ({"direction": "grant", "amount": "5", "reason": "  "}, "A reason is required"),
    ({"direction": "grant", "amount": "5", "reason": "x" * 501}, "reason is longer than 500"),
    ({"direction": "gift", "amount": "5", "reason": "x"}, "Choose Grant credits or Revoke credits"),
])
def test_a_bad_credit_form_is_400_naming_the_problem(settings, signed_in, data, message):
    user = create_user(settings, credits=1)
    page = f"/console/users/{user.id}"
    response = signed_in.post_form(page, f"{page}/credits", data)
    assert response.status_code == 400 and message in response.text


def test_unknown_objects_and_bad_filters_get_their_status(signed_in):
    assert signed_in.get(f"/console/users/{uuid.uuid4()}").status_code == 404
    assert signed_in.get(f"/console/inbox/{uuid.uuid4()}").status_code == 404
    bad_state = signed_in.get("/console/inbox?state=lost")
    assert bad_state.status_code == 400 and "state must be one of" in bad_state.text
    bad_time = signed_in.get("/console/inbox?from=yesterday")
    assert bad_time.status_code == 400 and "from must be a date and time" in bad_time.text
    assert signed_in.get("/console/jobs?user=nobody@example.com").status_code == 404


def test_replay_from_the_event_page_is_audited_and_a_second_replay_changes_nothing(signed_in, owner_conn, operator):
    event_id = str(owner_conn.execute(
        "insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload, state, reason, "
        "attempts, finished_at) values (%s, gen_random_uuid(), 'done', %s, 'rejected', 'unknown result: test', 1, "
        "now()) returning id", (f"test:{uuid.uuid4()}", Jsonb({}))).fetchone()[0])
    page = f"/console/inbox/{event_id}"
    shown = signed_in.get(page)
    assert "unknown result: test" in shown.text and ">Replay</button>" in shown.text
    first = signed_in.post_form(page, f"{page}/replay")
    assert first.status_code == 303 and "notice=replayed" in first.headers["location"]
    # A pipeline worker of another test module may share this session's queue and re-reject the replayed event at
    # once; as applied, the event is one a second click must leave alone whatever runs (test_actions.py checks
    # the `received` case where no worker runs).
    owner_conn.execute("update internal.webhook_inbox set state = 'applied', reason = null, finished_at = now() "
                       "where id = %s", (event_id,))
    second = signed_in.http.post(f"{page}/replay", data={"csrf_token": shown.text.split(
        'name="csrf_token" value="')[1].split('"')[0]})
    assert second.status_code == 303 and "notice=not_replayed" in second.headers["location"]
    [audit] = audit_rows(owner_conn, event_id)
    assert audit["operator_id"] == operator.id and audit["before"]["reason"] == "unknown result: test"
    owner_conn.execute("update internal.webhook_inbox set state = 'rejected', reason = 'test row', "
                       "finished_at = now() where id = %s", (event_id,))


def test_sign_out_ends_the_session(signed_in, owner_conn, operator):
    before = session_count(owner_conn, operator.id)
    response = signed_in.post_form("/console/overview", "/console/logout")
    assert response.status_code == 303 and response.headers["location"] == "/console/login"
    assert session_count(owner_conn, operator.id) == before - 1
    assert signed_in.get("/console/overview").status_code == 302


def test_sign_in_is_rate_limited_and_the_message_names_the_setting(settings, engine):
    operator = make_operator(settings, engine)
    api = start_api(settings, auth_rate_limit_sign_in=2, auth_rate_limit_window_seconds=60)
    client = ConsoleClient(api.url)
    try:
        statuses = [client.sign_in(operator.email, "wrong password").status_code for _ in range(3)]
        limited = client.sign_in(operator.email, operator.password)
    finally:
        client.close()
        api.stop()
    assert statuses[:2] == [400, 400] and 429 in statuses[2:] + [limited.status_code]
    assert limited.status_code == 429 and "AUTH_RATE_LIMIT_SIGN_IN" in limited.text
    assert int(limited.headers["retry-after"]) >= 1


def test_with_an_external_url_the_console_lives_only_on_its_own_host(settings):
    api = start_api(settings, console_external_url="http://console.localhost")
    try:
        on_api_host = httpx.get(f"{api.url}/console/login", timeout=30)
        on_console_host = httpx.get(f"{api.url}/console/login", headers={"Host": "console.localhost"}, timeout=30)
        api_on_console_host = httpx.get(f"{api.url}/rest/v1/", headers={"Host": "console.localhost"}, timeout=30)
    finally:
        api.stop()
    assert on_api_host.status_code == 404
    assert on_console_host.status_code == 200 and "Operator sign-in" in on_console_host.text
    assert api_on_console_host.status_code == 404


def test_the_console_can_be_turned_off(settings):
    api = start_api(settings, console_enabled=False)
    try:
        response = httpx.get(f"{api.url}/console/login", timeout=30)
    finally:
        api.stop()
    assert response.status_code == 404


def test_the_jobs_page_retries_a_failed_dispatch_and_reenables_dispatch(settings, engine, signed_in, owner_conn):
    user = create_user(settings, credits=5)
    [result_id] = submit_results(engine, user, 1)
    owner_conn.execute("select internal.fail_dispatch_job(%s, 'dispatch_failed', 'HTTP 503 three times')",
                       (result_id,))
    owner_conn.execute("update internal.dispatch_endpoint set enabled = false, disabled_reason = '410 Gone'")
    page = signed_in.get("/console/jobs")
    assert "HTTP 503 three times" in page.text and f'aria-label="Retry dispatch of job {result_id}"' in page.text
    assert "410 Gone" in page.text and ">Re-enable dispatch</button>" in page.text
    retried = signed_in.post_form("/console/jobs", f"/console/jobs/{result_id}/retry-dispatch")
    assert retried.status_code == 303 and "notice=dispatch_resubmitted" in retried.headers["location"]
    enabled = signed_in.post_form("/console/jobs", "/console/dispatch/enable")
    assert enabled.status_code == 303 and "notice=dispatch_enabled" in enabled.headers["location"]
    assert ">Re-enable dispatch</button>" not in signed_in.get("/console/jobs").text
    assert owner_conn.execute("select count(*) from public.segmentation_results where metadata ->> 'retry_of' = %s",
                              (result_id,)).fetchone()[0] == 1


def test_the_jobs_page_lists_a_job_without_progress_as_stuck_and_cancels_it(settings, engine, signed_in, owner_conn):
    user = create_user(settings, credits=5)
    [stuck_id, fresh_id] = submit_results(engine, user, 2)
    # The updated_at trigger refuses a forged timestamp; as the owner in replica mode, triggers stay out of the way.
    with owner_conn.transaction():
        owner_conn.execute("set local session_replication_role = replica")
        owner_conn.execute("update public.segmentation_results set updated_at = now() - interval '1 hour' "
                           "where id = %s", (stuck_id,))
    stuck_section = signed_in.get("/console/jobs").text.split("CONSOLE_STUCK_AFTER_SECONDS", 1)[1]
    assert f"Cancel job {stuck_id}" in stuck_section.split("</table>", 1)[0]
    assert f"Cancel job {fresh_id}" not in stuck_section.split("</table>", 1)[0]
    cancelled = signed_in.post_form("/console/jobs", f"/console/jobs/{stuck_id}/cancel")
    assert cancelled.status_code == 303, cancelled.text
    assert owner_conn.execute("select status::text from public.segmentation_results where id = %s",
                              (stuck_id,)).fetchone()[0] == "error"
