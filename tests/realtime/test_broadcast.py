"""Broadcast: client → server → members on both serializers (realtime-js's binary push included), `self` and `ack`,
REST sends, and broadcasts from the database delivered after commit through the outbox and the relay."""
from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest

from db.urls import libpq_url
from tests.support.realtime import PhoenixSocket, service_sql, user_broadcast_push


def topic() -> str:
    return f"realtime:room-{uuid.uuid4().hex[:8]}"


def is_broadcast(message) -> bool:
    return message["event"] == "broadcast"


@pytest.fixture
def sockets(api_server, anon_key):
    opened: list[PhoenixSocket] = []

    def open_socket(vsn: str = "1.0.0") -> PhoenixSocket:
        sock = PhoenixSocket(api_server.url, anon_key, vsn)
        opened.append(sock)
        return sock

    yield open_socket
    for sock in opened:
        sock.close()


def test_a_text_broadcast_reaches_the_other_members_not_the_sender(sockets):
    room = topic()
    sender, py_member, js_member = sockets("1.0.0"), sockets("1.0.0"), sockets("2.0.0")
    for sock in (sender, py_member, js_member):
        assert sock.join(room, [], None)["payload"]["status"] == "ok"
    envelope = {"type": "broadcast", "event": "progress", "payload": {"pct": 40}}
    sender.send(room, "broadcast", envelope, join_ref=sender.join_refs[room])
    for member in (py_member, js_member):
        got = member.wait(is_broadcast)
        assert got["payload"] == envelope and got["topic"] == room
    assert got["raw"].startswith("[null,null,")  # the vsn 2.0.0 member's text frame
    # self: false (the default): the sender never gets its own message; a later one proves nothing was queued.
    py_member.send(room, "broadcast", {"type": "broadcast", "event": "after", "payload": {}},
                   join_ref=py_member.join_refs[room])
    first = sender.wait(is_broadcast)
    assert first["payload"]["event"] == "after"


def test_self_and_ack_options(sockets):
    room = topic()
    sender, member = sockets("2.0.0"), sockets("1.0.0")
    assert sender.join(room, [], None, broadcast={"self": True, "ack": True})["payload"]["status"] == "ok"
    assert member.join(room, [], None)["payload"]["status"] == "ok"
    ref = sender.send(room, "broadcast", {"type": "broadcast", "event": "e", "payload": {"n": 1}},
                      join_ref=sender.join_refs[room])
    reply = sender.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)
    assert reply["payload"] == {"status": "ok", "response": {}}
    assert sender.wait(is_broadcast)["payload"]["payload"] == {"n": 1}
    assert member.wait(is_broadcast)["payload"]["payload"] == {"n": 1}


def test_a_binary_push_from_supabase_js_is_decoded_for_both_serializers(sockets):
    room = topic()
    sender, js_member, py_member = sockets("2.0.0"), sockets("2.0.0"), sockets("1.0.0")
    assert sender.join(room, [], None, broadcast={"ack": True})["payload"]["status"] == "ok"
    for member in (js_member, py_member):
        assert member.join(room, [], None)["payload"]["status"] == "ok"
    join_ref = sender.join_refs[room]
    sender.ws.send(user_broadcast_push(join_ref, "9", room, "status", b'{"id":7}'))
    reply = sender.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == "9")
    assert reply["payload"]["status"] == "ok" and reply["join_ref"] == join_ref
    expected = {"type": "broadcast", "event": "status", "payload": {"id": 7}}
    assert js_member.wait(is_broadcast)["payload"] == expected
    assert py_member.wait(is_broadcast)["payload"] == expected
    # Raw bytes reach vsn 2.0.0 members as the binary USER_BROADCAST; a vsn 1.0.0 client could not decode them.
    sender.ws.send(user_broadcast_push(join_ref, "10", room, "blob", b"\x00\x01\xff", json_payload=False))
    got = js_member.wait(is_broadcast)
    assert got.get("binary") and got["payload"]["payload"] == b"\x00\x01\xff"
    sender.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == "10")
    py_member.send(room, "broadcast", {"type": "broadcast", "event": "marker", "payload": {}},
                   join_ref=py_member.join_refs[room])
    assert js_member.wait(is_broadcast)["payload"]["event"] == "marker"
    assert [m for m in py_member.drain(0.5) if is_broadcast(m)] == []


def test_an_unknown_event_gets_an_error_reply(sockets):
    room = topic()
    sock = sockets("1.0.0")
    assert sock.join(room, [], None)["payload"]["status"] == "ok"
    ref = sock.send(room, "shout", {}, join_ref=sock.join_refs[room])
    reply = sock.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)
    assert reply["payload"]["status"] == "error" and "shout" in reply["payload"]["response"]["reason"]


def test_rest_sends_are_delivered_after_commit(api_server, sockets, anon_key, relay):
    room = topic()
    member = sockets("2.0.0")
    assert member.join(room, [], None)["payload"]["status"] == "ok"
    sub = room.removeprefix("realtime:")
    headers = {"apikey": anon_key, "Authorization": f"Bearer {anon_key}"}
    with httpx.Client(base_url=api_server.url, headers=headers, timeout=15) as client:
        single = client.post(f"/realtime/v1/api/broadcast/{sub}/events/done", json={"job": 1})
        assert single.status_code == 202, single.text
        got = member.wait(is_broadcast)
        assert got["payload"]["event"] == "done" and got["payload"]["payload"] == {"job": 1}
        assert uuid.UUID(got["payload"]["meta"]["id"])
        batch = client.post("/realtime/v1/api/broadcast",
                            json={"messages": [{"topic": sub, "event": "a", "payload": {"n": 1}},
                                               {"topic": sub, "event": "b", "payload": {"n": 2}}]})
        assert batch.status_code == 202, batch.text
        assert [member.wait(is_broadcast)["payload"]["event"] for _ in range(2)] == ["a", "b"]
        bad = client.post("/realtime/v1/api/broadcast", json={"messages": [{"topic": "", "event": "a"}]})
        assert bad.status_code == 400 and "topic" in bad.json()["error"]
        binary = client.post(f"/realtime/v1/api/broadcast/{sub}/events/x", content=b"\x00",
                             headers={"Content-Type": "application/octet-stream"})
        assert binary.status_code == 415 and binary.json()["message"]
        refused = client.post(f"/realtime/v1/api/broadcast/{sub}/events/x", json={},
                              headers={"apikey": "nope", "Authorization": ""})
        assert refused.status_code in (401, 403)


def test_realtime_send_from_the_database_is_delivered_after_commit_and_never_on_rollback(settings, sockets, relay):
    room = topic()
    sub = room.removeprefix("realtime:")
    member = sockets("1.0.0")
    assert member.join(room, [], None)["payload"]["status"] == "ok"
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        conn.execute("set role service_role")
        conn.execute("select realtime.send('{\"step\": \"rolled back\"}', 'status', %s, false)", (sub,))
        conn.rollback()
    service_sql(settings, "select realtime.send('{\"step\": \"committed\"}', 'status', %s, false)", (sub,))
    got = member.wait(is_broadcast)
    assert got["payload"]["payload"]["step"] == "committed"
    assert got["payload"]["meta"]["id"] == got["payload"]["payload"]["id"]
    # private defaults to true: public members of the topic never receive a private message.
    service_sql(settings, "select realtime.send('{\"step\": \"private\"}', 'status', %s)", (sub,))
    service_sql(settings, "select realtime.send('{\"step\": \"marker\"}', 'status', %s, false)", (sub,))
    assert member.wait(is_broadcast)["payload"]["payload"]["step"] == "marker"


def test_broadcast_changes_from_a_trigger(settings, sockets, relay, owner_conn):
    room = topic()
    sub = room.removeprefix("realtime:")
    table = f"public.bc_{uuid.uuid4().hex[:8]}"
    owner_conn.execute(f"create table {table} (id int primary key, status text)")
    owner_conn.execute(f"""create function {table}_notify() returns trigger language plpgsql as $$
        begin
          perform realtime.send(jsonb_build_object('record', to_jsonb(new), 'operation', tg_op), 'job', '{sub}', false);
          perform realtime.broadcast_changes('{sub}', tg_op, tg_op, tg_table_name, tg_table_schema, new, old);
          return null;
        end $$""")
    owner_conn.execute(f"create trigger notify after insert or update on {table} for each row "
                       f"execute function {table}_notify()")
    try:
        member = sockets("2.0.0")
        assert member.join(room, [], None)["payload"]["status"] == "ok"
        owner_conn.execute(f"insert into {table} values (1, 'done')")
        got = member.wait(is_broadcast)
        assert got["payload"]["event"] == "job"
        assert got["payload"]["payload"]["record"] == {"id": 1, "status": "done"}
    finally:
        owner_conn.execute(f"drop table {table} cascade")
        owner_conn.execute(f"drop function {table}_notify()")
