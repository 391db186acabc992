"""Token lifecycle on an open socket: refresh keeps the channel, expiry and logout end it."""
from __future__ import annotations

import time

import httpx
import pytest

from api.identity import mint_access_token
from tests.support.clients import NodeRealtimeClient
from tests.support.realtime import PhoenixSocket, insert_result

RESULTS = {"event": "*", "schema": "public", "table": "segmentation_results"}


def token_for(settings, user, *, expires_in: int | None = None) -> str:
    now = int(time.time())
    if expires_in is not None:
        now = now - settings.jwt_expiry_seconds + expires_in
    return mint_access_token(settings, session_id=user.session_id, user={"id": user.id, "email": user.email},
                             now=now).token


def ended(sock: PhoenixSocket, topic: str, timeout: float = 20) -> str:
    system = sock.wait(lambda m: m["event"] == "system" and m["topic"] == topic
                       and m["payload"]["status"] == "error", timeout)
    assert system["payload"]["channel"] == topic.split(":", 1)[1] and system["payload"]["extension"] == "system"
    sock.wait(lambda m: m["event"] == "phx_close" and m["topic"] == topic, timeout)
    return system["payload"]["message"]


@pytest.mark.node
def test_refresh_over_the_socket_keeps_the_channel_and_swaps_the_identity(api_server, relay, settings, anon_key,
                                                                         user, other_user):
    client = NodeRealtimeClient(api_server.url, anon_key, user.access_token, [{"name": "jobs", "bindings": [RESULTS]}])
    try:
        client.wait_subscribed("jobs")
        client.command(cmd="token", token=token_for(settings, user))  # the hourly refresh: same user, new token
        client.wait(lambda m: m["kind"] == "token-set")
        first = insert_result(settings, user.id)
        assert client.wait(lambda m: m["kind"] == "change")["payload"]["new"]["id"] == first
        # The server really re-authorizes: with another user's token the channel follows that user's rows.
        client.command(cmd="token", token=other_user.access_token)
        client.wait(lambda m: m["kind"] == "token-set")
        # The access_token push has no reply (as on Supabase); a heartbeat's reply on the same socket comes after
        # the server handled it.
        client.command(cmd="sync")
        assert client.wait(lambda m: m["kind"] == "synced")["status"] == "ok"
        insert_result(settings, user.id)
        theirs = insert_result(settings, other_user.id)
        event = client.wait(lambda m: m["kind"] == "change")["payload"]
        assert event["new"]["id"] == theirs
        assert [m for m in client.drain(0.5) if m["kind"] == "status" and m["status"] != "SUBSCRIBED"] == []
    finally:
        client.close()


def test_expiry_without_replacement_ends_the_channel(api_server, relay, settings, anon_key, user):
    sock = PhoenixSocket(api_server.url, anon_key)
    try:
        reply = sock.join("realtime:short", [RESULTS], token_for(settings, user, expires_in=3))
        assert reply["payload"]["status"] == "ok"
        assert ended(sock, "realtime:short").startswith("Token has expired")
        hb = sock.send("phoenix", "heartbeat", {})  # the socket itself stays usable
        assert sock.wait(lambda m: m["topic"] == "phoenix")["ref"] == hb
    finally:
        sock.close()


def test_a_refreshed_token_outlives_the_expiry_of_the_first(api_server, relay, settings, anon_key, user):
    sock = PhoenixSocket(api_server.url, anon_key)
    try:
        short = token_for(settings, user, expires_in=3)
        join = sock.join("realtime:kept", [RESULTS], short)
        sock.send("realtime:kept", "access_token", {"access_token": token_for(settings, user)},
                  join_ref=join["ref"])
        # A witness channel keeps the short token: once the sweeper has ended it, the short token's expiry has
        # been swept, and the refreshed channel must have survived that sweep.
        assert sock.join("realtime:witness", [RESULTS], short)["payload"]["status"] == "ok"
        assert ended(sock, "realtime:witness").startswith("Token has expired")
        result_id = insert_result(settings, user.id)
        change = sock.wait(lambda m: m["event"] == "postgres_changes")
        assert change["payload"]["data"]["record"]["id"] == result_id
        assert [m for m in sock.inbox if m["event"] in ("system", "phx_close") and m["payload"].get("status") == "error"] == []
    finally:
        sock.close()


def test_logout_ends_the_sessions_channels_within_seconds(api_server, relay, settings, anon_key, user):
    sock = PhoenixSocket(api_server.url, anon_key)
    try:
        assert sock.join("realtime:mine", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        response = httpx.post(f"{api_server.url}/auth/v1/logout", headers=user.headers(anon_key))
        assert response.status_code == 204, response.text
        assert "revoked" in ended(sock, "realtime:mine", timeout=20)
        again = sock.join("realtime:mine", [RESULTS], user.access_token)
        assert again["payload"]["status"] == "error" and "Session" in again["payload"]["response"]["reason"]
    finally:
        sock.close()


def test_a_refused_token_swap_ends_the_channel(api_server, relay, settings, anon_key, user):
    sock = PhoenixSocket(api_server.url, anon_key)
    try:
        join = sock.join("realtime:swap", [RESULTS], user.access_token)
        sock.send("realtime:swap", "access_token", {"access_token": "not.a.jwt"}, join_ref=join["ref"])
        assert "JWT" in ended(sock, "realtime:swap")
    finally:
        sock.close()
