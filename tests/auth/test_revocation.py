"""Ending a user's sessions: a ban or a deletion, written by any path (here plain SQL, as an operator would), stops
the user's refresh token, access tokens and open realtime channels — through the one session check every surface
uses (`db.auth.session_is_live`)."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import jwt
import pytest

from tests.auth.test_wire import assert_gotrue_error
from tests.support.processes import wait_for
from tests.support.realtime import PhoenixSocket

RESULTS = {"event": "*", "schema": "public", "table": "segmentation_results"}
BAN = "update auth.users set banned_until = now() + interval '1 hour' where id = %s"
DELETE = "delete from auth.users where id = %s"


@pytest.fixture
def joined(api_server, gotrue, anon_key) -> Iterator[tuple[dict, PhoenixSocket]]:
    """A signed-up user (its session JSON) with a realtime channel joined with its access token."""
    session = gotrue.signup().json()
    sock = PhoenixSocket(api_server.url, anon_key)
    try:
        reply = sock.join("realtime:mine", [RESULTS], session["access_token"])
        assert reply["payload"]["status"] == "ok", reply
        yield session, sock
    finally:
        sock.close()


def channel_ended(sock: PhoenixSocket, topic: str) -> str:
    system = sock.wait(lambda m: m["event"] == "system" and m["topic"] == topic
                       and m["payload"]["status"] == "error", timeout=30)
    sock.wait(lambda m: m["event"] == "phx_close" and m["topic"] == topic, timeout=30)
    return system["payload"]["message"]


def rest_status(api_server, anon_key, access_token: str) -> int:
    return httpx.get(f"{api_server.url}/rest/v1/segmentation_results?select=id",
                     headers={"apikey": anon_key, "Authorization": f"Bearer {access_token}"}, timeout=15).status_code


@pytest.mark.parametrize(("statement", "refresh_code"), [(BAN, "user_banned"), (DELETE, "refresh_token_not_found")],
                         ids=["banned", "deleted"])
def test_ban_or_deletion_ends_every_session_of_the_user(api_server, gotrue, anon_key, owner_conn, joined,
                                                        statement, refresh_code):
    session, sock = joined
    user_id = session["user"]["id"]
    assert rest_status(api_server, anon_key, session["access_token"]) == 200
    owner_conn.execute(statement, (user_id,))

    body = assert_gotrue_error(gotrue.refresh(session["refresh_token"]), 400, refresh_code)
    if refresh_code == "user_banned":
        assert body["message"] == "Invalid Refresh Token: User Banned"
    assert channel_ended(sock, "realtime:mine") == "Token has been revoked: the session ended"
    wait_for(lambda: rest_status(api_server, anon_key, session["access_token"]) == 401, 30,
             message="the data API refusing the ended session")
    assert gotrue.user(session["access_token"]).status_code == 403
    assert_gotrue_error(gotrue.password_grant(session["user"]["email"]), 400,
                        "user_banned" if refresh_code == "user_banned" else "invalid_credentials")


def test_a_new_session_after_the_ban_lifts_works(gotrue, owner_conn):
    session = gotrue.signup().json()
    owner_conn.execute(BAN, (session["user"]["id"],))
    assert_gotrue_error(gotrue.refresh(session["refresh_token"]), 400, "user_banned")
    owner_conn.execute("update auth.users set banned_until = now() - interval '1 second' where id = %s",
                       (session["user"]["id"],))
    fresh = gotrue.password_grant(session["user"]["email"])
    assert fresh.status_code == 200
    claims = jwt.decode(fresh.json()["access_token"], options={"verify_signature": False})
    assert gotrue.user(fresh.json()["access_token"]).status_code == 200 and claims["session_id"]
