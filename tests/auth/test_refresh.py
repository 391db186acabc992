"""Refresh-token rotation and reuse detection, GoTrue's rules: over HTTP (a live API with no reuse interval) and
in-process for the interval itself."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest

from api.auth.errors import AuthError
from api.auth.service import AuthContext, refresh_session, sign_up
from api.identity import TokenError, resolve_caller
from tests.auth.test_wire import assert_gotrue_error
from tests.support.auth import GoTrue, new_email


def test_refresh_reuse_revokes_the_session(reuse_api, anon_key, owner_conn):

    client = GoTrue(reuse_api.url, anon_key)
    try:
        session = client.signup().json()
        child = client.refresh(session["refresh_token"]).json()
        grandchild = client.refresh(child["refresh_token"]).json()
        # The parent of the active token may retry (the client lost the answer): it gets the same active token.
        # Here the active token is the grandchild, so `session["refresh_token"]` is a replay: no reuse interval.
        body = assert_gotrue_error(client.refresh(session["refresh_token"]), 400, "refresh_token_already_used")
        assert body["message"] == "Invalid Refresh Token: Already Used"
        assert_gotrue_error(client.user(grandchild["access_token"]), 403, "session_not_found")
        assert client.refresh(grandchild["refresh_token"]).status_code == 400
        session_id = jwt.decode(session["access_token"], options={"verify_signature": False})["session_id"]
        assert owner_conn.execute("select count(*) from auth.sessions where id = %s", (session_id,)).fetchone()[0] == 0
    finally:
        client.close()


def test_parent_of_the_active_token_gets_the_same_token_back(reuse_api, anon_key):

    client = GoTrue(reuse_api.url, anon_key)
    try:
        session = client.signup().json()
        child = client.refresh(session["refresh_token"]).json()
        retried = client.refresh(session["refresh_token"])
        assert retried.status_code == 200, retried.text
        assert retried.json()["refresh_token"] == child["refresh_token"]
        assert client.refresh(child["refresh_token"]).status_code == 200
    finally:
        client.close()


def test_replay_within_the_reuse_interval_gets_a_new_token(auth_context):
    assert auth_context.settings.auth_refresh_reuse_interval_seconds >= 5
    _, first = sign_up(auth_context, email=new_email(), password="long enough password", data={})
    child = refresh_session(auth_context, refresh_token=first.refresh_token)
    refresh_session(auth_context, refresh_token=child.refresh_token)
    replay = refresh_session(auth_context, refresh_token=first.refresh_token)
    assert replay.refresh_token not in (first.refresh_token, child.refresh_token)


def test_replay_after_the_interval_revokes_the_session_everywhere(auth_context, settings, engine, anon_key):
    strict = AuthContext(settings.model_copy(update={"auth_refresh_reuse_interval_seconds": 0}), engine,
                         auth_context.hasher)
    _, first = sign_up(strict, email=new_email(), password="long enough password", data={})
    child = refresh_session(strict, refresh_token=first.refresh_token)
    grandchild = refresh_session(strict, refresh_token=child.refresh_token)
    assert resolve_caller(apikey=anon_key, bearer=grandchild.access.token, settings=settings,
                          engine=engine).role == "authenticated"
    with pytest.raises(AuthError) as error:
        refresh_session(strict, refresh_token=first.refresh_token)
    assert error.value.code == "refresh_token_already_used"
    with pytest.raises(TokenError) as refused:
        resolve_caller(apikey=anon_key, bearer=grandchild.access.token, settings=settings, engine=engine)
    assert refused.value.kind == "session"
    with pytest.raises(AuthError):
        refresh_session(strict, refresh_token=grandchild.refresh_token)


def test_concurrent_refreshes_with_one_token_get_the_same_child(auth_context):
    _, first = sign_up(auth_context, email=new_email(), password="long enough password", data={})
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: refresh_session(auth_context, refresh_token=first.refresh_token).refresh_token,
                                range(2)))
    assert results[0] == results[1] != first.refresh_token
