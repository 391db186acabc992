"""Isolation: a bad join, a slow client, a failing subscriber or a silent socket harms nobody else."""
from __future__ import annotations

import json
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from api.realtime import bindings as realtime_bindings
from api.realtime.channels import Channel
from api.realtime.hub import Hub
from db.uow import Caller
from tests.support.processes import ApiProcess, wait_for
from tests.support.realtime import PhoenixSocket, insert_result, service_sql

RESULTS = {"event": "*", "schema": "public", "table": "segmentation_results"}


def test_bad_joins_get_their_own_error_and_leave_the_good_channel_alone(api_server, relay, settings, anon_key,
                                                                         user):
    sock = PhoenixSocket(api_server.url, anon_key, "2.0.0")
    try:
        assert sock.join("realtime:good", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        bad = {
            "realtime:bad-token": ([RESULTS], "not.a.jwt", "MalformedJWT"),
            "realtime:bad-signature": ([RESULTS], user.access_token[:-4] + "AAAA", "JwtSignatureError"),
            "realtime:bad-table": ([{"event": "*", "schema": "public", "table": "nope"}], user.access_token,
                                   "publication"),
            "realtime:bad-filter": ([{**RESULTS, "filter": "status=like.x"}], user.access_token, "filter"),
            "realtime:bad-column": ([{**RESULTS, "filter": "nope=eq.1"}], user.access_token, "filter"),
        }
        for topic, (bindings, token, reason) in bad.items():
            reply = sock.join(topic, bindings, token)
            assert reply["payload"]["status"] == "error" and reason in reply["payload"]["response"]["reason"], reply
        sock.ws.send("this is not a frame")
        result_id = insert_result(settings, user.id)
        change = sock.wait(lambda m: m["event"] == "postgres_changes")
        assert change["topic"] == "realtime:good" and change["payload"]["data"]["record"]["id"] == result_id
    finally:
        sock.close()


class ExplodingConnection:
    vsn = "1.0.0"

    def push(self, frame: str) -> bool:
        raise RuntimeError("this subscriber is broken")


class Recording:
    vsn = "2.0.0"

    def __init__(self) -> None:
        self.frames: list[str] = []

    def push(self, frame: str) -> bool:
        self.frames.append(frame)
        return True


def test_an_exception_for_one_subscriber_never_stops_delivery_to_the_rest(settings, engine, user):
    hub = Hub(settings, engine)
    published = hub.published_tables()
    caller = Caller("authenticated", {"sub": user.id, "role": "authenticated"})
    good = [Recording(), Recording()]
    for index, conn in enumerate([good[0], ExplodingConnection(), good[1]]):
        bindings = realtime_bindings.parse_bindings([RESULTS], published)
        hub.register(Channel(conn, f"realtime:c{index}", "1", bindings, caller, None))
    change = {"id": 1, "schema": "public", "table": "segmentation_results", "type": "INSERT", "owner": user.id,
              "commit_timestamp": "2026-11-24T00:00:00.000Z", "columns": [{"name": "id", "type": "uuid"}],
              "hidden": {}, "record": {"id": "x"}, "old_record": None}
    assert hub.dispatch(json.dumps(change)) == 2
    assert hub.dispatch(b"{not json") == 0  # a malformed message is dropped, the next one still flows
    assert hub.dispatch(json.dumps(change)) == 2
    assert all(len(conn.frames) == 2 for conn in good)


class StuckClient:
    """A WebSocket client that joins and then never reads again (a tiny receive buffer, so TCP fills fast)."""

    def __init__(self, port: int, apikey: str, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="127.0.0.1",
                                               target=f"/realtime/v1/websocket?apikey={apikey}&vsn=1.0.0")))
        self._until(lambda e: isinstance(e, AcceptConnection))
        join = {"topic": "realtime:stuck", "event": "phx_join", "ref": "1", "join_ref": "1",
                "payload": {"config": {"postgres_changes": [RESULTS]}, "access_token": token}}
        self.sock.sendall(self.ws.send(TextMessage(data=json.dumps(join))))
        self._until(lambda e: isinstance(e, TextMessage) and "phx_reply" in e.data)

    def _until(self, predicate) -> None:
        self.sock.settimeout(10)
        while True:
            self.ws.receive_data(self.sock.recv(65536))
            if any(predicate(event) for event in self.ws.events()):
                return

    def close(self) -> None:
        self.sock.close()


def test_a_client_that_stops_reading_is_closed_and_delays_nobody(settings, relay, anon_key, user):
    api = ApiProcess(settings.model_copy(update={"realtime_send_queue_size": 10})).start()
    stuck = StuckClient(api.port, anon_key, user.access_token)
    reader = PhoenixSocket(api.url, anon_key)
    try:
        assert reader.join("realtime:reader", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        result_id = insert_result(settings, user.id)
        reader.wait(lambda m: m["event"] == "postgres_changes")
        big = "x" * 60_000
        updates = 120
        received = []
        for n in range(updates):  # the reader reads each change as it comes; the stuck client never does
            service_sql(settings, "update public.segmentation_results set text_prompt = %s where id = %s",
                        (f"{n}:{big}", result_id))
            received.append(reader.wait(lambda m: m["event"] == "postgres_changes", timeout=30))
        assert [m["payload"]["data"]["record"]["text_prompt"].split(":")[0] for m in received] == \
            [str(n) for n in range(updates)]
        wait_for(lambda: "send queue overflowed" in api.log_text(), 30, message="the stuck socket to be closed")
    finally:
        stuck.close()
        reader.close()
        api.stop()


def test_large_frames_to_a_client_that_reads_late_arrive_whole(api_server, relay, settings, anon_key, user):
    """Frames far larger than the socket buffers, to a client that stops reading for a while: each send waits for
    the client's window instead of writing part of a frame and losing the rest (connection.WholeFrameSocket)."""
    reader = PhoenixSocket(api_server.url, anon_key)  # its background reader stops after 16 queued messages
    try:
        assert reader.join("realtime:large", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        result_id = insert_result(settings, user.id)
        reader.wait(lambda m: m["event"] == "postgres_changes")
        updates, size = 40, 250_000  # 10 MB queued behind a client that is not reading
        for n in range(updates):
            service_sql(settings, "update public.segmentation_results set text_prompt = %s where id = %s",
                        (f"{n}:" + "y" * size, result_id))
        # The client has stopped reading (its frame buffer is full): wait until the server has filled the TCP
        # receive buffer behind it, so the sends below had to wait for the client's window.
        wait_for(lambda: reader.unread_bytes() >= 64 * 1024, 60, message="the server to fill the client's buffer")
        prompts = [reader.wait(lambda m: m["event"] == "postgres_changes", timeout=30)
                   ["payload"]["data"]["record"]["text_prompt"] for _ in range(updates)]
        assert [p.split(":")[0] for p in prompts] == [str(n) for n in range(updates)]
        assert all(len(p) == len(f"{n}:") + size for n, p in enumerate(prompts))
    finally:
        reader.close()


def test_a_silent_socket_is_freed_by_the_heartbeat_timeout(settings, relay, anon_key, user):
    api = ApiProcess(settings.model_copy(update={"realtime_heartbeat_timeout_seconds": 5})).start()
    sock = PhoenixSocket(api.url, anon_key)
    try:
        assert sock.join("realtime:quiet", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() - started < 30:
                sock.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert "heartbeat" in closed.value.rcvd.reason
    finally:
        sock.close()
        api.stop()


class ClosableSocket:
    vsn = "1.0.0"

    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self.closed_with: tuple[str, int] | None = None

    def abort(self, reason: str, code: int) -> None:
        if self.broken:
            raise OSError("this socket is broken")
        self.closed_with = (reason, code)


def test_closing_all_sockets_reaches_every_socket_joined_or_not_past_a_broken_one(settings, engine):
    hub = Hub(settings, engine)
    sockets = [ClosableSocket(), ClosableSocket(broken=True), ClosableSocket()]
    for socket_ in sockets:
        hub.registry.add_socket(socket_)
    assert hub.close_all("server shutting down: reconnect") == 3
    assert [s.closed_with for s in sockets] == [("server shutting down: reconnect", 1001), None,
                                                ("server shutting down: reconnect", 1001)]
