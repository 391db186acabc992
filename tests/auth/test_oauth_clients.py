"""The real clients against Google sign-in served by segbase and a local OpenID provider: supabase-py (sync) and
supabase-js 2.119.0 under Node, each flow: ID token, the redirect flow in PKCE mode, linking and unlinking."""
from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from supabase import ClientOptions, create_client
from supabase_auth.errors import AuthApiError

from tests.auth.test_clients import run_node
from tests.support.auth import PASSWORD, new_email
from tests.support.oidc import sha256_hex

SITE = "http://127.0.0.1:3000"


def follow(url: str) -> str:
    with httpx.Client(timeout=15) as browser:
        for _ in range(6):
            if url.startswith(SITE):
                return url
            url = browser.get(url).headers["Location"]
    raise AssertionError(url)


def test_supabase_py_id_token_pkce_redirect_link_and_unlink(google_api, anon_key, oidc):
    email = new_email()
    native = create_client(google_api.url, anon_key)
    signed_in = native.auth.sign_in_with_id_token({"provider": "google", "nonce": "raw-nonce",
                                                   "token": oidc.id_token(email=email, nonce=sha256_hex("raw-nonce"))})
    assert signed_in.session is not None and signed_in.user.email == email
    assert signed_in.user.identities[0].provider == "google"
    with pytest.raises(AuthApiError):  # OAuth-shaped errors carry no code: py raises with the description
        create_client(google_api.url, anon_key).auth.sign_in_with_id_token(
            {"provider": "google", "token": oidc.id_token(email=email, aud="someone-else")})

    # supabase-py's default flow is PKCE: the verifier stays in the client's storage
    browser_client = create_client(google_api.url, anon_key, ClientOptions(flow_type="pkce"))
    pkce_email = new_email()
    started = browser_client.auth.sign_in_with_oauth({"provider": "google", "options": {
        "redirect_to": f"{SITE}/cb", "query_params": {"login_hint": oidc.login_hint(email=pkce_email)}}})
    landed = follow(started.url)
    code = parse_qs(urlsplit(landed).query)["code"][0]
    exchanged = browser_client.auth.exchange_code_for_session({"auth_code": code})
    assert exchanged.user.email == pkce_email and exchanged.session.provider_token
    assert browser_client.auth.get_user().user.email == pkce_email

    # linking: an email user adds Google through the redirect flow, then removes it
    linker = create_client(google_api.url, anon_key, ClientOptions(flow_type="pkce"))
    linker.auth.sign_up({"email": new_email(), "password": PASSWORD})
    link = linker.auth.link_identity({"provider": "google", "options": {
        "redirect_to": f"{SITE}/linked", "query_params": {"login_hint": oidc.login_hint(sub=uuid.uuid4().hex,
                                                                                        email=new_email())}}})
    code = parse_qs(urlsplit(follow(link.url)).query)["code"][0]
    linker.auth.exchange_code_for_session({"auth_code": code})
    identities = linker.auth.get_user_identities().identities
    assert [identity.provider for identity in identities] == ["email", "google"]
    linker.auth.unlink_identity(identities[1])
    assert [i.provider for i in linker.auth.get_user_identities().identities] == ["email"]
    with pytest.raises(AuthApiError) as last:
        linker.auth.unlink_identity(linker.auth.get_user_identities().identities[0])
    assert last.value.code == "single_identity_not_deletable"


def test_supabase_js_google_flows(google_api, anon_key, oidc):
    config = {
        "site": SITE, "password": PASSWORD, "nonce": "raw-js-nonce", "linkEmail": new_email(),
        "idToken": oidc.id_token(email=new_email(), nonce=sha256_hex("raw-js-nonce")),
        "pkceHint": oidc.login_hint(email=(pkce_email := new_email())),
        "linkIdToken": oidc.id_token(sub=uuid.uuid4().hex, email=new_email()),
        "linkHint": oidc.login_hint(sub=uuid.uuid4().hex, email=new_email()),
    }
    out = run_node("auth_oauth.mjs", google_api.url, anon_key, json.dumps(config))
    assert out["idToken"]["error"] is None and out["idToken"]["providers"] == ["google"]
    assert out["badNonce"]["name"] == "AuthApiError" and out["badNonce"]["message"] == "Nonces mismatch"
    assert out["pkce"] == {"error": None, "email": pkce_email, "providerToken": True, "getUser": pkce_email}
    assert out["signUp"] is None
    assert out["linkIdToken"] == {"error": None, "sameUser": True}
    assert out["identitiesAfterLink"] == ["email", "google"]
    assert out["unlink"] is None and out["identitiesAfterUnlink"] == ["email"]
    assert out["unlinkLast"]["code"] == "single_identity_not_deletable"
    assert out["linkRedirect"] == {"error": None, "landedWithSession": True}
    assert out["identitiesAfterRedirectLink"] == ["email", "google"]
    assert "SIGNED_IN" in out["events"]
