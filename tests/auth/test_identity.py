"""The one verifier (api/identity.py): forged tokens are refused by it directly and on every live surface."""
from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import jwt
import pytest
from pydantic import SecretStr
from websockets.sync.client import connect

from api.identity import (
    SESSION_CACHE_SECONDS,
    TokenError,
    caller_from_claims,
    decode_token,
    forget_session,
    mint_access_token,
    resolve_caller,
    session_is_alive,
    sessions_alive,
)
from tests.support.auth import new_email
from tests.support.factories import create_user


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_tokens(settings, user, owner_conn) -> dict[str, str]:
    """Each way a user token can be forged or stale, keyed by the TokenError kind expected."""
    valid = user.access_token
    header, payload, signature = valid.split(".")
    claims = jwt.decode(valid, options={"verify_signature": False})
    revoked = create_user(settings)
    owner_conn.execute("delete from auth.sessions where id = %s", (revoked.session_id,))
    expired = mint_access_token(settings, user={"id": user.id, "email": user.email}, session_id=user.session_id,
                                now=int(time.time()) - settings.jwt_expiry_seconds - 600).token
    return {
        "alg_none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong_key": jwt.encode(claims, "not-the-secret-" * 3, algorithm="HS256"),
        "expired": expired,
        "edited_role": f"{header}.{b64({**claims, 'role': 'service_role'})}.{signature}",
        "edited_sub": f"{header}.{b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}",
        "revoked_session": revoked.access_token,
        "hs_service_role_with_aud": jwt.encode({**claims, "role": "service_role"}, "x" * 40, algorithm="HS256"),
    }


EXPECTED_KIND = {"alg_none": "malformed", "wrong_key": "signature", "expired": "expired",
                 "edited_role": "signature", "edited_sub": "signature", "revoked_session": "session",
                 "hs_service_role_with_aud": "signature"}


@pytest.fixture(scope="module")
def victim(settings):
    return create_user(settings)


@pytest.fixture
def forged(settings, victim, owner_conn):
    return forged_tokens(settings, victim, owner_conn)


def test_valid_tokens_resolve(settings, engine, anon_key, service_key, victim):
    assert resolve_caller(apikey=anon_key, bearer=None, settings=settings, engine=engine).role == "anon"
    assert resolve_caller(apikey=anon_key, bearer=service_key, settings=settings, engine=engine).role == "service_role"
    caller = resolve_caller(apikey=anon_key, bearer=victim.access_token, settings=settings, engine=engine)
    assert caller.role == "authenticated" and caller.user_id == victim.id


def test_forged_tokens_are_refused_by_the_verifier(settings, engine, anon_key, forged):
    for name, token in forged.items():
        with pytest.raises(TokenError) as refused:
            resolve_caller(apikey=anon_key, bearer=token, settings=settings, engine=engine)
        assert refused.value.kind == EXPECTED_KIND[name], name


def test_apikey_kinds(settings, anon_key, victim):
    for apikey, kind in ((None, "missing_apikey"), ("", "missing_apikey"), ("garbage", "invalid_apikey"),
                         (victim.access_token, "invalid_apikey"),
                         (jwt.encode({"role": "anon", "exp": 4_102_444_800}, "k" * 40, algorithm="HS256"),
                          "invalid_apikey")):
        with pytest.raises(TokenError) as refused:
            resolve_caller(apikey=apikey, bearer=None, settings=settings)
        assert refused.value.kind == kind


def test_no_token_maps_to_an_internal_role(settings):
    secret = settings.jwt_secret.get_secret_value()
    for role in ("supabase_auth_admin", "postgres", "authenticator"):
        key = jwt.encode({"role": role, "exp": 4_102_444_800}, secret, algorithm="HS256")
        with pytest.raises(TokenError):
            caller_from_claims(decode_token(key, settings))
        with pytest.raises(TokenError):
            caller_from_claims({"role": role})


def test_external_secret_accepts_user_tokens_only(settings, engine, anon_key, victim):
    external_secret = "an-external-supabase-project-secret-0123456789"
    with_external = settings.model_copy(update={"auth_external_jwt_secret": SecretStr(external_secret)})
    claims = jwt.decode(victim.access_token, options={"verify_signature": False})
    external_user = jwt.encode(claims, external_secret, algorithm="HS256")
    caller = resolve_caller(apikey=anon_key, bearer=external_user, settings=with_external, engine=engine)
    assert caller.role == "authenticated" and caller.user_id == victim.id
    with pytest.raises(TokenError):  # not accepted without the setting
        resolve_caller(apikey=anon_key, bearer=external_user, settings=settings, engine=engine)
    for role in ("service_role", "anon"):
        external_key = jwt.encode({"role": role, "exp": 4_102_444_800}, external_secret, algorithm="HS256")
        with pytest.raises(TokenError):
            resolve_caller(apikey=anon_key, bearer=external_key, settings=with_external, engine=engine)
        with pytest.raises(TokenError) as refused:
            resolve_caller(apikey=external_key, bearer=None, settings=with_external, engine=engine)
        assert refused.value.kind == "invalid_apikey"


def test_session_is_alive_is_robust_and_notices_revocation(settings, engine, owner_conn):
    for bad in ("", "not-a-uuid", None, str(uuid.uuid4())):
        assert session_is_alive(engine, bad) is False
    user = create_user(settings)
    assert session_is_alive(engine, user.session_id) is True
    owner_conn.execute("delete from auth.sessions where id = %s", (user.session_id,))
    deadline = time.monotonic() + SESSION_CACHE_SECONDS + 5
    while session_is_alive(engine, user.session_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_is_alive(engine, user.session_id) is False


def test_sessions_alive_answers_many_sessions_as_session_is_alive_does(settings, engine, owner_conn):
    """The realtime sweeper's batch check: the same answer per session as the one-at-a-time check."""
    live, revoked, banned = create_user(settings), create_user(settings), create_user(settings)
    owner_conn.execute("delete from auth.sessions where id = %s", (revoked.session_id,))
    owner_conn.execute("update auth.users set banned_until = now() + interval '1 hour' where id = %s", (banned.id,))
    asked = [live.session_id, revoked.session_id, banned.session_id, "not-a-uuid", str(uuid.uuid4())]
    for session_id in asked:
        forget_session(session_id)
    assert sessions_alive(engine, asked) == {live.session_id}
    assert sessions_alive(engine, asked) == {live.session_id}  # the second answer comes from the cache
    assert [session_is_alive(engine, s) for s in asked] == [True, False, False, False, False]


def test_forged_tokens_are_refused_on_auth(gotrue, forged):
    for name, token in forged.items():
        response = gotrue.user(token)
        expected = "session_not_found" if name == "revoked_session" else "bad_jwt"
        assert response.status_code == 403 and response.json()["code"] == expected, name


def _surface_exists(response: httpx.Response) -> bool:
    """A surface still being written answers the foundation's generic 404 for its routes."""
    if response.status_code != 404:
        return True
    try:
        return response.json().get("error", {}).get("code") != "not_found"
    except ValueError:
        return True


def test_forged_tokens_are_refused_on_rest(api_server, anon_key, victim, forged):
    url = f"{api_server.url}/rest/v1/users_profile?select=id"
    ok = httpx.get(url, headers={"apikey": anon_key, "Authorization": f"Bearer {victim.access_token}"})
    if not _surface_exists(ok):
        pytest.skip("/rest/v1 not on this build yet")
    assert ok.status_code == 200, ok.text
    for name, token in forged.items():
        response = httpx.get(url, headers={"apikey": anon_key, "Authorization": f"Bearer {token}"})
        assert response.status_code in (401, 403), (name, response.text)
    assert httpx.get(url).status_code == 401  # and no apikey, no entry


def test_forged_tokens_are_refused_on_functions(api_server, anon_key, victim, forged):
    url = f"{api_server.url}/functions/v1/credit-check"
    ok = httpx.post(url, json={}, headers={"apikey": anon_key, "Authorization": f"Bearer {victim.access_token}"})
    if not _surface_exists(ok):
        pytest.skip("/functions/v1 not on this build yet")
    for name, token in forged.items():
        response = httpx.post(url, json={}, headers={"apikey": anon_key, "Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (name, response.text)


def test_signed_up_users_token_resolves(gotrue, settings, engine, anon_key):
    session = gotrue.signup(new_email()).json()
    caller = resolve_caller(apikey=anon_key, bearer=session["access_token"], settings=settings, engine=engine)
    assert caller.user_id == session["user"]["id"] and caller.claims["session_id"]


def _realtime_join_status(api_server, anon_key, token: str) -> str:
    url = api_server.url.replace("http://", "ws://") + f"/realtime/v1/websocket?apikey={anon_key}&vsn=1.0.0"
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"topic": "realtime:auth-probe", "event": "phx_join", "ref": "1", "join_ref": "1",
                            "payload": {"config": {"postgres_changes": []}, "access_token": token}}))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame = json.loads(ws.recv(timeout=10))
            if frame.get("event") == "phx_reply" and frame.get("ref") == "1":
                return frame["payload"]["status"]
    raise AssertionError("no join reply")


def test_forged_tokens_are_refused_on_realtime(api_server, anon_key, victim, forged):
    if _realtime_join_status(api_server, anon_key, victim.access_token) != "ok":
        pytest.skip("/realtime/v1 does not accept joins on this build yet")
    for name, token in forged.items():
        assert _realtime_join_status(api_server, anon_key, token) == "error", name
