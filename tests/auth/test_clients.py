"""The real clients against a live `segbase api`: supabase-py (sync) and supabase-js 2.119.0 under Node."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from supabase import create_client
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from tests.support.auth import PASSWORD, new_email, start_api
from tests.support.processes import ROOT


def run_node(script: str, *args: str) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the supabase-js tests (make test installs node_modules)")
    result = subprocess.run([node, "--experimental-websocket", str(ROOT / "tests" / "node" / script), *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_supabase_py_full_flow(api_server, anon_key, owner_conn):
    email = new_email()
    client = create_client(api_server.url, anon_key)
    signed_up = client.auth.sign_up({"email": email, "password": PASSWORD,
                                     "options": {"data": {"display_name": "Py"}}})
    assert signed_up.session is not None and signed_up.user.email == email
    assert signed_up.user.user_metadata == {"display_name": "Py"}
    profile = owner_conn.execute("select display_name, tier from public.users_profile where id = %s",
                                 (signed_up.user.id,)).fetchone()
    assert profile == ("Py", "free")

    signed_in = client.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert signed_in.session.access_token and signed_in.user.id == signed_up.user.id
    assert client.auth.get_user().user.email == email

    updated = client.auth.update_user({"data": {"plan": "pro-trial"}})
    assert updated.user.user_metadata == {"display_name": "Py", "plan": "pro-trial"}

    old = signed_in.session
    refreshed = client.auth.refresh_session()
    assert refreshed.session.refresh_token != old.refresh_token
    assert refreshed.session.access_token != old.access_token
    assert client.auth.get_user().user.id == signed_up.user.id

    access_token = refreshed.session.access_token
    client.auth.sign_out()
    assert client.auth.get_session() is None
    with pytest.raises(AuthApiError) as refused:
        create_client(api_server.url, anon_key).auth.get_user(access_token)
    assert refused.value.code == "session_not_found" and refused.value.status == 403


def test_supabase_py_typed_errors(api_server, anon_key):
    email = new_email()
    client = create_client(api_server.url, anon_key)
    client.auth.sign_up({"email": email, "password": PASSWORD})
    with pytest.raises(AuthApiError) as duplicate:
        create_client(api_server.url, anon_key).auth.sign_up({"email": email, "password": PASSWORD})
    assert duplicate.value.code == "user_already_exists" and duplicate.value.status == 422
    with pytest.raises(AuthWeakPasswordError) as weak:
        create_client(api_server.url, anon_key).auth.sign_up({"email": new_email(), "password": "short"})
    assert weak.value.code == "weak_password" and weak.value.reasons == ["length"]
    with pytest.raises(AuthApiError) as wrong:
        create_client(api_server.url, anon_key).auth.sign_in_with_password({"email": email, "password": "nope-nope"})
    assert wrong.value.code == "invalid_credentials" and wrong.value.status == 400


def test_supabase_py_refresh_reuse_revokes_the_session(reuse_api, anon_key):
    client = create_client(reuse_api.url, anon_key)
    first = client.auth.sign_up({"email": new_email(), "password": PASSWORD}).session
    client.auth.refresh_session()
    latest = client.auth.refresh_session().session
    with pytest.raises(AuthApiError) as reused:
        create_client(reuse_api.url, anon_key).auth.refresh_session(first.refresh_token)
    assert reused.value.code == "refresh_token_already_used"
    with pytest.raises(AuthApiError) as revoked:
        create_client(reuse_api.url, anon_key).auth.get_user(latest.access_token)
    assert revoked.value.code == "session_not_found"


def test_supabase_py_rate_limit_error(anon_key, settings):
    limited = start_api(settings, auth_rate_limit_sign_in=2, auth_rate_limit_window_seconds=60)
    try:
        codes = []
        for _ in range(5):
            try:
                create_client(limited.url, anon_key).auth.sign_in_with_password(
                    {"email": new_email(), "password": PASSWORD})
            except AuthApiError as exc:
                codes.append((exc.status, exc.code))
        assert (429, "over_request_rate_limit") in codes
    finally:
        limited.stop()


@pytest.mark.node
def test_supabase_js_full_flow(api_server, anon_key):
    email = new_email()
    out = run_node("auth_flow.mjs", api_server.url, anon_key, email, PASSWORD)
    assert out["signUp"] == {"error": None, "userEmail": email, "hasSession": True,
                             "metadata": {"display_name": "Js"}}
    assert out["duplicate"] == {"name": "AuthApiError", "code": "user_already_exists", "status": 422,
                                "reasons": None}
    assert out["weak"]["name"] == "AuthWeakPasswordError" and out["weak"]["code"] == "weak_password"
    assert out["weak"]["reasons"] == ["length"]
    assert out["wrongPassword"]["code"] == "invalid_credentials" and out["wrongPassword"]["status"] == 400
    assert out["signIn"]["error"] is None and out["signIn"]["expiresIn"] == 3600
    assert out["getUser"] == {"error": None, "email": email}
    assert out["updateUser"] == {"error": None, "metadata": {"display_name": "Js", "plan": "edge"}}
    assert out["refresh"] == {"error": None, "rotated": True, "sameUser": True}
    assert out["signOut"] is None
    # auth-js turns session_not_found into AuthSessionMissingError
    assert out["afterSignOut"]["name"] == "AuthSessionMissingError"
    if out["profile"]["error"] is None:  # /rest/v1 present: the token works on the data API too
        assert out["profile"]["data"] == {"display_name": "Js", "tier": "free"}


@pytest.mark.node
def test_supabase_js_refresh_reuse(reuse_api, anon_key):
    out = run_node("auth_reuse.mjs", reuse_api.url, anon_key, new_email())
    assert out["rotated"] is True
    assert out["replay"]["code"] == "refresh_token_already_used" and out["replay"]["status"] == 400
    assert out["afterReplay"]["status"] in (400, 403)
