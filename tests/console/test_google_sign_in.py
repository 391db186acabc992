"""Operators sign in to the console with Google: the auth service's redirect flow in PKCE mode against a local
OpenID provider, the verifier held in the browser's cookie, and the same operator checks as a password sign-in."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.console import ConsoleClient, make_operator
from tests.support.oidc import OidcProvider, start_provider_api


@pytest.fixture(scope="module")
def oidc() -> Iterator[OidcProvider]:
    provider = OidcProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def google_api(settings, oidc):
    server = start_provider_api(settings, oidc)
    yield server
    server.stop()


@pytest.fixture
def browser(google_api) -> Iterator[ConsoleClient]:
    client = ConsoleClient(google_api.url)
    yield client
    client.close()


def google_round_trip(browser: ConsoleClient):
    """Click "Sign in with Google" and follow the redirects until the console answers the return."""
    response = browser.get("/console/login/google")
    assert response.status_code == 303, response.text
    for _ in range(3):  # provider → /auth/v1/callback → /console/login/google/done
        response = browser.http.get(response.headers["location"])
        if "/console/login/google/done" in str(response.request.url):
            return response
    raise AssertionError(f"never came back to the console: {response.request.url}")


def test_an_operator_signs_in_with_google(settings, engine, browser, oidc, owner_conn):
    operator = make_operator(settings, engine)
    assert "Sign in with Google" in browser.get("/console/login").text
    oidc.default_login = {"email": operator.email, "email_verified": True, "name": "Op"}
    done = google_round_trip(browser)
    assert done.status_code == 303 and done.headers["location"] == "/console/overview"
    page = browser.get("/console/users")
    assert page.status_code == 200 and operator.email in page.text
    audit = owner_conn.execute("select after ->> 'method' from internal.operator_audit where operator_id = %s "
                               "and action = 'console.sign_in'", (operator.id,)).fetchall()
    assert audit == [("google",)]
    # the code is spent: the same return again gets no session
    again = browser.http.get(str(done.request.url))
    assert again.status_code in (400, 404) and "Operator sign-in" in again.text


def test_a_google_user_who_is_not_an_operator_gets_403_and_no_session(browser, oidc, owner_conn):
    oidc.default_login = {"email": "not-an-operator@example.test", "email_verified": True}
    before = owner_conn.execute("select count(*) from auth.sessions").fetchone()[0]
    done = google_round_trip(browser)
    assert done.status_code == 403 and "not a console operator" in done.text
    assert owner_conn.execute("select count(*) from auth.sessions").fetchone()[0] == before
    assert browser.get("/console/users").status_code == 302  # still asked to sign in


def test_the_return_needs_the_browser_that_started(google_api, browser, oidc, settings, engine):
    operator = make_operator(settings, engine)
    oidc.default_login = {"email": operator.email, "email_verified": True}
    start = browser.get("/console/login/google")
    to_callback = browser.http.get(start.headers["location"])
    to_console = browser.http.get(to_callback.headers["location"])
    stranger = ConsoleClient(google_api.url)
    try:
        stolen = stranger.http.get(to_console.headers["location"])
        assert stolen.status_code == 400 and "did not start in this browser" in stolen.text
    finally:
        stranger.close()


def test_google_is_not_offered_when_not_configured(api_server):
    client = ConsoleClient(api_server.url)
    try:
        assert "Sign in with Google" not in client.get("/console/login").text
        assert client.get("/console/login/google").status_code == 404
    finally:
        client.close()
