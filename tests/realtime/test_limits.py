"""What one client may hold on a socket and a process, and what a refusal looks like (docs/REALTIME.md, "Limits").

Each API process here lowers the limits it tests, so a handful of sockets reaches them; the settings are printed."""
from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from api.realtime.limits import TOO_MANY_CHANNELS, TOO_MANY_FOR_USER, TOO_MANY_FROM_ADDRESS, TOO_MANY_JOINS
from schemas.settings import Settings
from tests.support.processes import ApiProcess
from tests.support.realtime import PhoenixSocket, close_code, insert_result, masked_frame

RESULTS = {"event": "*", "schema": "public", "table": "segmentation_results"}


def limited_api(settings: Settings, **limits) -> ApiProcess:
    print("realtime limits for this API:", json.dumps(limits, sort_keys=True))
    return ApiProcess(settings.model_copy(update=limits)).start()


@pytest.fixture(scope="module")
def socket_api(settings: Settings) -> Iterator[ApiProcess]:
    api = limited_api(settings, realtime_max_message_bytes=4096, realtime_max_channels_per_socket=3,
                      realtime_max_sockets_per_user=2, realtime_joins_per_second=0.01)
    yield api
    api.stop()


def reason(reply: dict) -> str:
    assert reply["payload"]["status"] == "error", reply
    return reply["payload"]["response"]["reason"]


def test_a_message_over_the_size_limit_closes_the_socket_with_1009(socket_api, anon_key, user):
    bystander = PhoenixSocket(socket_api.url, anon_key)
    sock = PhoenixSocket(socket_api.url, anon_key)
    try:
        assert bystander.join("realtime:bystander", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        sock.send("phoenix", "heartbeat", {"padding": "x" * 5000})
        assert close_code(sock)[0] == 1009
        ref = bystander.send("phoenix", "heartbeat", {})
        assert bystander.wait(lambda m: m["ref"] == ref)["payload"]["status"] == "ok"
    finally:
        sock.close()
        bystander.close()


def test_invalid_utf8_in_a_text_frame_closes_the_socket_with_1007(socket_api, anon_key):
    sock = PhoenixSocket(socket_api.url, anon_key)
    try:
        sock.ws.socket.sendall(masked_frame(0x1, b'{"topic":"phoenix","event":"heartbeat","payload":{"x":"\xff\xfe"}}'))
        assert close_code(sock)[0] == 1007
    finally:
        sock.close()


def test_past_the_channel_limit_a_join_is_refused_and_the_others_keep_working(socket_api, relay, settings, anon_key,
                                                                             user):
    sock = PhoenixSocket(socket_api.url, anon_key)
    try:
        for n in range(3):
            assert sock.join(f"realtime:c{n}", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        assert reason(sock.join("realtime:c3", [RESULTS], user.access_token)) == TOO_MANY_CHANNELS
        result_id = insert_result(settings, user.id)
        topics = {sock.wait(lambda m: m["event"] == "postgres_changes")["topic"] for _ in range(3)}
        assert topics == {"realtime:c0", "realtime:c1", "realtime:c2"}
        assert all(c["payload"]["data"]["record"]["id"] == result_id for c in sock.inbox
                   if c["event"] == "postgres_changes")
    finally:
        sock.close()


def test_joins_past_the_rate_are_refused(socket_api, anon_key, user):
    sock = PhoenixSocket(socket_api.url, anon_key)
    try:
        for n in range(3):  # the burst is the channel limit; then 0.01 joins a second
            assert sock.join(f"realtime:r{n}", [RESULTS], user.access_token)["payload"]["status"] == "ok"
            leave = sock.send(f"realtime:r{n}", "phx_leave", {})
            sock.wait(lambda m: m["ref"] == leave)
        assert reason(sock.join("realtime:r3", [RESULTS], user.access_token)) == TOO_MANY_JOINS
    finally:
        sock.close()


def test_a_user_past_the_socket_limit_is_refused_at_the_join(socket_api, anon_key, user, other_user):
    sockets = [PhoenixSocket(socket_api.url, anon_key) for _ in range(3)]
    try:
        # A socket counts once per user, however many of its channels act as them.
        for n, sock in enumerate(sockets[:2]):
            assert sock.join(f"realtime:u{n}a", [RESULTS], user.access_token)["payload"]["status"] == "ok"
            assert sock.join(f"realtime:u{n}b", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        assert reason(sockets[2].join("realtime:u2", [RESULTS], user.access_token)) == TOO_MANY_FOR_USER
        assert sockets[2].join("realtime:other", [RESULTS], other_user.access_token)["payload"]["status"] == "ok"
        # Leaving every channel of that user on one socket frees its place.
        for topic in ("realtime:u0a", "realtime:u0b"):
            leave = sockets[0].send(topic, "phx_leave", {})
            sockets[0].wait(lambda m: m["ref"] == leave)
        assert sockets[2].join("realtime:u2", [RESULTS], user.access_token)["payload"]["status"] == "ok"
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("binding, parameter", [
    ({"event": "*", "schema": ["public"], "table": "segmentation_results"}, "postgres_changes[0].schema"),
    ({"event": "*", "schema": "public", "table": {"name": "x"}}, "postgres_changes[0].table"),
    ({"event": 5, "schema": "public"}, "postgres_changes[0].event"),
    ({"event": "*", "schema": "public", "filter": 7}, "postgres_changes[0].filter"),
])
def test_a_binding_with_wrong_types_gets_an_error_naming_the_parameter_and_no_traceback(
        socket_api, anon_key, other_user, binding, parameter):
    sock = PhoenixSocket(socket_api.url, anon_key)
    try:
        assert parameter in reason(sock.join("realtime:typed", [binding], other_user.access_token))
        for payload, name in (({"config": "x", "access_token": other_user.access_token}, "config"),
                              ({"config": {}, "access_token": ["x"]}, "access_token")):
            ref = sock.send("realtime:more", "phx_join", payload)
            assert name in reason(sock.wait(lambda m: m["ref"] == ref))
    finally:
        sock.close()
    assert "Traceback" not in socket_api.log_text()


@pytest.fixture(scope="module")
def capped_api(settings: Settings) -> Iterator[ApiProcess]:
    """20 sockets per process (30 connections, 10 kept for HTTP), 2 per address; addresses come from
    X-Forwarded-For, trusted from the loopback proxy."""
    api = limited_api(settings, api_worker_connections=30, realtime_http_reserve=10, realtime_max_sockets_per_ip=2,
                      realtime_max_sockets_per_user=100, trusted_proxies=["127.0.0.1/32"])
    yield api
    api.stop()


def from_address(api: ApiProcess, anon_key: str, address: str) -> PhoenixSocket:
    return PhoenixSocket(api.url, anon_key, headers={"X-Forwarded-For": address})


def test_an_address_past_its_socket_limit_has_its_joins_refused_and_is_closed(capped_api, anon_key, user):
    mine = [from_address(capped_api, anon_key, "10.0.0.1") for _ in range(3)]
    elsewhere = from_address(capped_api, anon_key, "10.0.0.2")
    try:
        for n, sock in enumerate(mine[:2]):
            assert sock.join(f"realtime:a{n}", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        assert reason(mine[2].join("realtime:a2", [RESULTS], user.access_token)) == TOO_MANY_FROM_ADDRESS
        assert close_code(mine[2]) == (1008, TOO_MANY_FROM_ADDRESS)
        assert elsewhere.join("realtime:b", [RESULTS], user.access_token)["payload"]["status"] == "ok"
    finally:
        for sock in [*mine, elsewhere]:
            sock.close()


def test_at_the_process_socket_cap_http_is_still_served(capped_api, anon_key, service_key, user):
    sockets = []
    try:
        for n in range(20):
            sockets.append(from_address(capped_api, anon_key, f"10.1.0.{n}"))
        with pytest.raises(InvalidStatus) as refused:
            from_address(capped_api, anon_key, "10.2.0.1")
        assert refused.value.response.status_code == 503
        assert b"ConnectionRateLimitReached" in refused.value.response.body
        with httpx.Client(base_url=capped_api.url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            signed_in = client.post("/auth/v1/token", params={"grant_type": "password"}, headers={"apikey": anon_key},
                                    json={"email": user.email, "password": user.password})
            assert signed_in.status_code == 200, signed_in.text
            listed = client.get("/rest/v1/segmentation_results", params={"select": "id"},
                                headers=user.headers(anon_key))
            assert listed.status_code == 200, listed.text
            credits = client.get("/functions/v1/credit-check", headers=user.headers(anon_key))
            assert credits.status_code == 200, credits.text
        # Every socket held at the cap still works.
        ref = sockets[-1].send("phoenix", "heartbeat", {})
        assert sockets[-1].wait(lambda m: m["ref"] == ref)["payload"]["status"] == "ok"
    finally:
        for sock in sockets:
            sock.close()
