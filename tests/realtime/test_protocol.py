"""The wire format as pure functions, checked against frames captured from the real py and js clients."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.realtime import bindings as realtime_bindings
from api.realtime import protocol
from schemas.realtime import ChangeEvent

VECTORS = [json.loads(line) for line in (Path(__file__).parent / "vectors" / "client_frames.jsonl").open()]
PUBLISHED = {"public": {"todos": {"id": "int8", "title": "text", "done": "bool"},
                        "segmentation_results": {"id": "uuid", "user_id": "uuid", "status": "segmentation_status",
                                                 "created_at": "timestamptz"}}}


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["kind"] == "ws_in"],
                         ids=lambda v: f"{v['source']}-{json.loads(v['frame'])['event'] if v['vsn'] == '1.0.0' else json.loads(v['frame'])[3]}")
def test_every_captured_client_frame_decodes(vector):
    message = protocol.decode(vector["frame"], vector["vsn"])
    assert message.topic in ("phoenix", "realtime:todos-changes")
    assert message.event in ("phx_join", "phx_leave", "heartbeat", "access_token")
    if message.event == "phx_join":
        assert message.ref == message.join_ref
        bindings = realtime_bindings.parse_bindings(message.payload["config"]["postgres_changes"], PUBLISHED)
        reply = realtime_bindings.join_response(bindings)["postgres_changes"]
        assert [{k: v for k, v in b.items() if k != "id"} for b in reply] == \
            message.payload["config"]["postgres_changes"]
        assert all(isinstance(b["id"], int) and b["id"] > 0 for b in reply)


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["kind"] == "ws_out"], ids=lambda v: v["source"])
def test_server_frames_we_encode_match_the_captured_shapes(vector):
    """Re-encode each captured server frame with our encoder; the decoded JSON must be identical."""
    captured = json.loads(vector["frame"])
    if vector["vsn"] == "2.0.0":
        join_ref, ref, topic, event, payload = captured
    else:
        topic, event, payload, ref, join_ref = (captured["topic"], captured["event"], captured["payload"],
                                                captured["ref"], None)
    if event == "postgres_changes":
        frame = protocol.change_frame(vector["vsn"], topic, payload["ids"], json.dumps(payload["data"]))
    else:
        frame = protocol.encode(vector["vsn"], topic, event, payload, ref, join_ref)
    assert json.loads(frame) == captured


def change_event(**fields) -> ChangeEvent:
    """A relay message with defaults for what a test does not look at."""
    return ChangeEvent.model_validate({"id": 1, "owner": None, "hidden": {}, **fields})


def test_change_data_shapes_per_type():
    base = {"schema": "public", "table": "todos", "commit_timestamp": "2026-11-24T15:50:55.000Z",
            "columns": [{"name": "id", "type": "int8"}, {"name": "secret", "type": "text"}],
            "record": {"id": 3, "secret": "s"}, "old_record": {"id": 3}}
    insert = json.loads(protocol.change_data(change_event(**{**base, "type": "INSERT", "old_record": None}), []))
    assert "old_record" not in insert and insert["record"] == {"id": 3, "secret": "s"} and insert["errors"] is None
    update = json.loads(protocol.change_data(change_event(**{**base, "type": "UPDATE"}), ["secret"]))
    assert update["record"] == {"id": 3} and update["old_record"] == {"id": 3}
    assert update["columns"] == [{"name": "id", "type": "int8"}]
    delete = json.loads(protocol.change_data(change_event(**{**base, "type": "DELETE", "record": None}), []))
    assert "record" not in delete and delete["old_record"] == {"id": 3}


@pytest.mark.parametrize("text,row,expected", [
    ("id=eq.3", {"id": 3}, True), ("id=eq.3", {"id": 4}, False), ("id=neq.3", {"id": 4}, True),
    ("id=lt.3", {"id": 2}, True), ("id=lte.3", {"id": 3}, True), ("id=gt.3", {"id": 3}, False),
    ("id=gte.3", {"id": 3}, True), ("id=in.(1,2,3)", {"id": 2}, True), ("id=in.(1,2)", {"id": 5}, False),
    ("title=eq.a b", {"title": "a b"}, True), ('title=in.("x,y",z)', {"title": "x,y"}, True),
    ("done=eq.true", {"done": True}, True), ("done=eq.false", {"done": True}, False),
    ("title=eq.x", {"title": None}, False), ("title=neq.x", {"title": None}, False),
    ("id=eq.3", {"title": "pk-only old record"}, True),
])
def test_filters(text, row, expected):
    types = {"id": "int8", "title": "text", "done": "bool"}
    assert realtime_bindings.filter_matches(realtime_bindings.parse_filter(text), row, types) is expected


def test_timestamp_and_uuid_filters_compare_by_type():
    types = {"created_at": "timestamptz", "user_id": "uuid"}
    later = realtime_bindings.parse_filter("created_at=gt.2026-01-01T00:00:00Z")
    assert realtime_bindings.filter_matches(later, {"created_at": "2026-11-24T10:00:00.5+00:00"}, types)
    same = realtime_bindings.parse_filter("user_id=eq.0D5A4A4E-3C3E-4A8E-9A52-2B2F3C1D0E11")
    assert realtime_bindings.filter_matches(same, {"user_id": "0d5a4a4e-3c3e-4a8e-9a52-2b2f3c1d0e11"}, types)


@pytest.mark.parametrize("config,reason", [
    ([{"event": "SELECT", "schema": "public", "table": "todos"}], "event"),
    ([{"event": "*", "schema": "public", "table": "nope"}], "publication"),
    ([{"event": "*", "schema": "auth", "table": "users"}], "publication"),
    ([{"event": "*", "schema": "public", "table": "todos", "filter": "id=like.3"}], "operator"),
    ([{"event": "*", "schema": "public", "table": "todos", "filter": "nope=eq.3"}], "unknown column"),
    ([{"event": "*", "schema": "public", "table": "todos", "filter": "id"}], "filter"),
    ("not a list", "list"),
])
def test_bad_bindings_are_refused_with_a_reason(config, reason):
    with pytest.raises(protocol.ProtocolError) as caught:
        realtime_bindings.parse_bindings(config, PUBLISHED)
    assert reason in caught.value.reason


def test_binding_without_table_covers_every_published_table_and_ids_are_distinct():
    bindings = realtime_bindings.parse_bindings([{"event": "*", "schema": "public"}, {"event": "*", "schema": "public"}],
                                                PUBLISHED)
    assert bindings[0].tables == {"todos", "segmentation_results"}
    assert bindings[0].id != bindings[1].id and min(b.id for b in bindings) > 0


@pytest.mark.parametrize("frame,vsn", [("nope", "1.0.0"), ("[1,2]", "2.0.0"), ('{"topic":1}', "1.0.0"),
                                       ('["1","1","t","e","payload"]', "2.0.0")])
def test_malformed_frames_raise_protocol_errors(frame, vsn):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(frame, vsn)


def test_flutter_stream_frames():
    """supabase-flutter `.stream(primaryKey: ['id']).eq('user_id', X)`: topic realtime:public:<table>:<n>, one
    `*` binding with the eq filter; DELETE must carry the primary key in old_record
    (supabase-flutter `packages/supabase/lib/src/supabase_stream_builder.dart` removes rows by it)."""
    frame = json.dumps(["3", "3", "realtime:public:segmentation_results:0", "phx_join", {
        "config": {"broadcast": {"ack": False, "self": False}, "presence": {"key": "", "enabled": False},
                   "postgres_changes": [{"event": "*", "schema": "public", "table": "segmentation_results",
                                         "filter": "user_id=eq.0d5a4a4e-3c3e-4a8e-9a52-2b2f3c1d0e11"}],
                   "private": False}, "access_token": "x.y.z"}])
    message = protocol.decode(frame, "2.0.0")
    assert protocol.sub_topic(message.topic) == "public:segmentation_results:0"
    [binding] = realtime_bindings.parse_bindings(message.payload["config"]["postgres_changes"], PUBLISHED)
    change = change_event(type="DELETE", schema="public", table="segmentation_results", record=None,
                          old_record={"id": "5f1c7a0e-0000-4000-8000-000000000001"}, columns=[],
                          commit_timestamp="2026-11-24T15:50:55.000Z")
    assert binding.matches(change, PUBLISHED["public"]["segmentation_results"])
    data = json.loads(protocol.change_data(change, []))
    assert data["old_record"] == {"id": "5f1c7a0e-0000-4000-8000-000000000001"}
    assert isinstance(json.loads(protocol.change_frame("2.0.0", message.topic, [binding.id], json.dumps(data)))[4]
                      ["ids"][0], int)


def test_the_relay_message_round_trips_through_its_model_and_refuses_what_it_does_not_know():
    event = change_event(type="UPDATE", schema="public", table="todos", commit_timestamp="2026-11-24T15:50:55.000Z",
                         columns=[{"name": "id", "type": "int8"}], record={"id": 3}, old_record={"id": 3},
                         owner="0d5a4a4e-3c3e-4a8e-9a52-2b2f3c1d0e11", hidden={"anon": ["id"]})
    wire = json.loads(event.to_json())
    assert wire["schema"] == "public" and "schema_name" not in wire
    assert ChangeEvent.model_validate_json(event.to_json()) == event
    for broken in ({**wire, "type": "TRUNCATE"}, {**wire, "surprise": 1}, {k: v for k, v in wire.items() if k != "id"}):
        with pytest.raises(ValidationError):
            ChangeEvent.model_validate_json(json.dumps(broken))
