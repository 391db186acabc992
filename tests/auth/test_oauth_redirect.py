"""The redirect flow with plain HTTP: `/authorize` → the local OpenID provider → `/callback` → `redirect_to`,
implicit (`#access_token=…`) and PKCE (`?code=…` then `grant_type=pkce`); the flow state's rules (signed,
single use, 300 s) and the redirect allow-list."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.auth import new_email
from tests.support.oidc import pkce_pair

SITE = "http://127.0.0.1:3000"


@pytest.fixture
def browser():
    with httpx.Client(timeout=15, follow_redirects=False) as client:
        yield client


def follow(browser: httpx.Client, url: str, *, stop_at: str = SITE, max_hops: int = 5) -> str:
    """Follow 302s like a browser until one leaves for the app (`stop_at`); answer that Location."""
    for _ in range(max_hops):
        if not url.startswith("http://127.0.0.1:") or url.startswith(stop_at):
            return url
        answer = browser.get(url)
        assert answer.status_code in (302, 303), (url, answer.status_code, answer.text)
        url = answer.headers["Location"]
    raise AssertionError(f"too many redirects, last {url}")


def authorize(google_api, *, hint: str | None = None, redirect_to: str | None = f"{SITE}/welcome",
              **params: str) -> str:
    query = {"provider": "google", **params}
    if redirect_to is not None:
        query["redirect_to"] = redirect_to
    if hint is not None:
        query["login_hint"] = hint
    return str(httpx.URL(f"{google_api.url}/auth/v1/authorize", params=query))


def fragment(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).fragment, keep_blank_values=True).items()}


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def test_authorize_redirects_to_the_provider_with_a_signed_state(google_api, oidc, browser):
    answer = browser.get(authorize(google_api, access_type="offline", prompt="consent", scopes="calendar"))
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(f"{oidc.issuer}/authorize?")
    params = query(location)
    assert params["client_id"] == oidc.client_ids[0]
    assert params["redirect_uri"] == f"{google_api.url}/auth/v1/callback"
    assert params["response_type"] == "code" and params["scope"] == "openid email profile calendar"
    assert params["access_type"] == "offline" and params["prompt"] == "consent"  # passed through
    flow_id, _, signature = params["state"].partition(".")
    assert len(flow_id) == 36 and signature
    # without following it: skip_http_redirect answers the URL as JSON (what linkIdentity asks for)
    as_json = browser.get(authorize(google_api, skip_http_redirect="true"))
    assert as_json.status_code == 200 and as_json.json()["url"].startswith(f"{oidc.issuer}/authorize?")


def test_implicit_flow_lands_with_a_session_in_the_fragment(google_api, oidc, google, browser, owner_conn):
    email = new_email()
    hint = oidc.login_hint(email=email, name="Grace H", picture="https://img.example.test/g.png")
    to_provider = browser.get(authorize(google_api, hint=hint)).headers["Location"]
    flow_id = query(to_provider)["state"].split(".")[0]
    landed = follow(browser, to_provider)
    assert landed.startswith(f"{SITE}/welcome#")
    session = fragment(landed)
    assert set(session) == {"access_token", "expires_at", "expires_in", "provider_token", "provider_refresh_token",
                            "refresh_token", "sb", "token_type"}
    assert session["token_type"] == "bearer" and session["provider_token"].startswith("ya29.")
    user = google.user(session["access_token"]).json()
    assert user["email"] == email and user["identities"][0]["provider"] == "google"
    assert owner_conn.execute("select count(*) from auth.flow_state where id = %s",
                              (flow_id,)).fetchone()[0] == 0  # the implicit flow leaves no state behind


def test_pkce_flow_gives_a_single_use_code(google_api, oidc, google, browser):
    verifier, challenge = pkce_pair()
    hint = oidc.login_hint(email=new_email())
    landed = follow(browser, authorize(google_api, hint=hint, redirect_to="com.example.app://login-callback?x=1",
                                       code_challenge=challenge, code_challenge_method="s256"),
                    stop_at="com.example.app://")
    assert landed.startswith("com.example.app://login-callback?")
    code = query(landed)["code"]
    assert query(landed)["x"] == "1"  # added to the app's own query
    client = google
    wrong = client.post("/token?grant_type=pkce", {"auth_code": code, "code_verifier": "x" * 43})
    assert wrong.status_code == 400 and wrong.json()["code"] == "bad_code_verifier"
    answer = client.post("/token?grant_type=pkce", {"auth_code": code, "code_verifier": verifier})
    assert answer.status_code == 200, answer.text
    session = answer.json()
    assert session["provider_token"].startswith("ya29.") and session["provider_refresh_token"]
    assert client.user(session["access_token"]).status_code == 200
    again = client.post("/token?grant_type=pkce", {"auth_code": code, "code_verifier": verifier})
    assert again.status_code == 404 and again.json()["code"] == "flow_state_not_found"
    empty = client.post("/token?grant_type=pkce", {"auth_code": code, "code_verifier": ""})
    assert empty.status_code == 400 and empty.json()["code"] == "validation_failed"


def test_state_is_single_use_signed_and_expires(google_api, google, oidc, browser, owner_conn):
    hint = oidc.login_hint(email=new_email())
    to_provider = browser.get(authorize(google_api, hint=hint)).headers["Location"]
    callback = browser.get(to_provider).headers["Location"]
    assert browser.get(callback).headers["Location"].startswith(f"{SITE}/welcome#access_token=")
    replay = query(browser.get(callback).headers["Location"])
    assert replay["error_code"] in ("bad_oauth_state", "flow_state_already_used")  # implicit rows are gone

    flow_id = query(to_provider)["state"].split(".")[0]
    forged = browser.get(f"{google_api.url}/auth/v1/callback?code=x&state={flow_id}.AAAA").headers["Location"]
    assert forged.startswith(SITE) and query(forged)["error_code"] == "bad_oauth_state"
    missing = query(browser.get(f"{google_api.url}/auth/v1/callback?code=x").headers["Location"])
    assert missing["error"] == "invalid_request" and missing["error_code"] == "bad_oauth_callback"

    verifier, challenge = pkce_pair()
    old = browser.get(authorize(google_api, hint=oidc.login_hint(email=new_email()), code_challenge=challenge,
                                code_challenge_method="S256")).headers["Location"]
    old_flow = query(old)["state"].split(".")[0]
    owner_conn.execute("update auth.flow_state set created_at = now() - interval '301 seconds' where id = %s",
                       (old_flow,))
    expired = query(follow(browser, old))
    assert expired["error_code"] == "bad_oauth_state" and "expired" in expired["error_description"]

    # a PKCE code expires with its flow state
    ok = query(follow(browser, authorize(google_api, hint=oidc.login_hint(email=new_email()),
                                         code_challenge=challenge, code_challenge_method="s256")))
    owner_conn.execute("update auth.flow_state set created_at = now() - interval '301 seconds' where auth_code = %s",
                       (ok["code"],))
    late = google.post("/token?grant_type=pkce", {"auth_code": ok["code"], "code_verifier": verifier})
    assert late.status_code == 422 and late.json()["code"] == "flow_state_expired"


def test_redirect_to_outside_the_allow_list_falls_back_to_the_site(google_api, oidc, browser):
    landed = follow(browser, authorize(google_api, hint=oidc.login_hint(email=new_email()),
                                       redirect_to="https://evil.example.test/steal"))
    assert landed.startswith(f"{SITE}#access_token=")
    allowed = follow(browser, authorize(google_api, hint=oidc.login_hint(email=new_email()),
                                        redirect_to="http://app.example.test/done"),
                     stop_at="http://app.example.test/")
    assert allowed.startswith("http://app.example.test/done#access_token=")


def test_provider_refusal_and_bad_requests(google_api, browser):
    refused = follow(browser, authorize(google_api, hint=None))  # the provider's user said no
    assert refused.startswith(f"{SITE}/welcome?")
    assert query(refused)["error"] == "access_denied" and fragment(refused)["error"] == "access_denied"
    assert "sb" in fragment(refused)
    bad = browser.get(authorize(google_api, code_challenge="short", code_challenge_method="s256"))
    assert bad.status_code == 400 and bad.json()["code"] == "validation_failed"
    half = browser.get(authorize(google_api, code_challenge="a" * 43))
    assert half.status_code == 400 and "code_challenge_method" in half.json()["message"]
    unknown = browser.get(f"{google_api.url}/auth/v1/authorize?provider=myspace")
    assert unknown.status_code == 400 and unknown.json()["code"] == "validation_failed"
    apple = browser.get(f"{google_api.url}/auth/v1/authorize?provider=apple")
    assert apple.status_code == 400 and "ID-token sign-in only" in apple.json()["message"]


def test_account_decision_errors_come_back_to_the_app(google_api, google, oidc, browser, owner_conn):
    email = new_email()
    google.signup(email)
    hint = oidc.login_hint(email=email, email_verified=False)
    to_provider = browser.get(authorize(google_api, hint=hint)).headers["Location"]
    landed = follow(browser, to_provider)
    assert landed.startswith(f"{SITE}/welcome?")
    assert query(landed)["error"] == "access_denied"
    assert query(landed)["error_code"] == "provider_email_needs_verification"
    assert fragment(landed)["error_code"] == "provider_email_needs_verification"
    flow_id = query(to_provider)["state"].split(".")[0]
    assert owner_conn.execute("select count(*) from auth.flow_state where id = %s", (flow_id,)).fetchone()[0] == 0
