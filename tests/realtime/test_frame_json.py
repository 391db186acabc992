"""Realtime frames are held to the JSON check every body is (api/http.py): a frame nested deeper than MAX_JSON_DEPTH
or holding a NUL (or a lone surrogate) in a string or key gets an error reply naming the field and the problem,
the socket keeps working, and no traceback is logged."""
from __future__ import annotations

import json

import pytest

from api.realtime import broadcast, protocol
from tests.support.realtime import PhoenixSocket

RESULTS = {"event": "*", "schema": "public", "table": "segmentation_results"}


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("vsn, field", [("1.0.0", "payload.config.postgres_changes.0.filter"),
                                        ("2.0.0", "4.config.postgres_changes.0.filter")])
def test_decode_refuses_a_nul_naming_the_field_and_keeps_the_frame_for_the_reply(vsn, field) -> None:
    payload = {"config": {"postgres_changes": [{**RESULTS, "filter": "id=eq.a\u0000"}]}}
    frame = (json.dumps({"topic": "realtime:t", "event": "phx_join", "payload": payload, "ref": "1", "join_ref": "1"})
             if vsn == "1.0.0" else json.dumps(["1", "1", "realtime:t", "phx_join", payload]))
    with pytest.raises(protocol.FrameRefused) as refused:
        protocol.decode(frame, vsn)
    assert refused.value.reason.startswith(f"{field}: must not contain a NUL character")
    assert refused.value.message.ref == "1" and refused.value.message.topic == "realtime:t"


def test_decode_refuses_nesting_past_the_depth_it_is_given() -> None:
    frame = json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {"x": nested(8)}, "ref": "2"})
    protocol.decode(frame, "1.0.0", max_depth=10)
    with pytest.raises(protocol.FrameRefused) as refused:
        protocol.decode(frame, "1.0.0", max_depth=9)
    assert "MAX_JSON_DEPTH" in refused.value.reason


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
def test_a_refused_frame_gets_an_error_reply_and_the_socket_keeps_working(api_server, relay, settings, anon_key, user,
                                                                          vsn) -> None:
    sock = PhoenixSocket(api_server.url, anon_key, vsn=vsn)
    try:
        assert sock.join("realtime:kept", [RESULTS], user.access_token)["payload"]["status"] == "ok"
        ref = sock.send("realtime:nul", "phx_join", {"config": {"postgres_changes": [
            {**RESULTS, "filter": "user_id=eq.\u0000"}]}, "access_token": user.access_token})
        reply = sock.wait(lambda m: m["ref"] == ref)
        assert reply["payload"]["status"] == "error"
        assert "must not contain a NUL character" in reply["payload"]["response"]["reason"]
        assert "postgres_changes.0.filter" in reply["payload"]["response"]["reason"]

        ref = sock.send("phoenix", "heartbeat", {"deep": nested(settings.max_json_depth)})
        reply = sock.wait(lambda m: m["ref"] == ref)
        assert reply["payload"]["status"] == "error" and "MAX_JSON_DEPTH" in reply["payload"]["response"]["reason"]

        ref = sock.send("phoenix", "heartbeat", {})
        assert sock.wait(lambda m: m["ref"] == ref)["payload"]["status"] == "ok"
    finally:
        sock.close()
    assert "Traceback" not in api_server.log_text()


def user_push(payload: bytes, *, meta: bytes = b"", encoding: int = 1) -> bytes:
    """realtime-js's binary broadcast push: kind 3, the lengths of join_ref, ref, topic, event and metadata, the
    payload's encoding, those strings, then the payload."""
    parts = [b"1", b"2", b"realtime:room", b"note", meta]
    return bytes([3, *(len(part) for part in parts), encoding]) + b"".join(parts) + payload


@pytest.mark.parametrize("payload, problem", [(b'{"text": "a\\u0000"}', "text"),
                                              (json.dumps(nested(80)).encode(), "MAX_JSON_DEPTH")])
def test_a_binary_broadcast_payload_is_held_to_the_json_check(payload, problem) -> None:
    push = broadcast.decode_user_push(user_push(payload), max_depth=64)
    with pytest.raises(protocol.ProtocolError, match=problem):
        broadcast.event_from_binary(push, "room", False, max_depth=64)


def test_binary_broadcast_metadata_is_held_to_the_json_check() -> None:
    # the metadata's length is one byte, so it cannot reach Python's recursion limit, but it can pass MAX_JSON_DEPTH
    with pytest.raises(protocol.ProtocolError, match="metadata"):
        broadcast.decode_user_push(user_push(b"{}", meta=b"[" * 120 + b"]" * 120), max_depth=64)
    with pytest.raises(protocol.ProtocolError, match="metadata"):
        broadcast.decode_user_push(user_push(b"{}", meta=b'{"a": "\\u0000"}'), max_depth=64)


def test_a_well_formed_binary_broadcast_passes() -> None:
    push = broadcast.decode_user_push(user_push(b'{"n": 1}'), max_depth=64)
    event = broadcast.event_from_binary(push, "room", False, max_depth=64)
    assert event.envelope == {"type": "broadcast", "event": "note", "payload": {"n": 1}}
