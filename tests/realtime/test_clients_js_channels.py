"""supabase-js 2.119.0 (vsn 2.0.0, binary broadcast pushes) for Broadcast, Presence, private channels, Broadcast
Replay and postgres_changes recovery, against the live API + relay + Redis."""
from __future__ import annotations

import time
import uuid

import pytest

from tests.realtime.test_private import rooms  # noqa: F401  (the membership-policy fixture)
from tests.support.clients import NodeRealtimeClient
from tests.support.realtime import insert_result, service_sql

pytestmark = pytest.mark.node

RESULTS = {"event": "*", "schema": "public", "table": "segmentation_results"}


def kind(name: str, channel: str | None = None):
    return lambda m: m["kind"] == name and (channel is None or m.get("channel") == channel)


def test_broadcast_with_ack_over_the_socket_and_over_rest(api_server, relay, anon_key):
    room = f"room-{uuid.uuid4().hex[:6]}"
    sender = NodeRealtimeClient(api_server.url, anon_key, anon_key,
                                [{"name": room, "config": {"broadcast": {"ack": True}}, "broadcast": ["progress"]}])
    member = NodeRealtimeClient(api_server.url, anon_key, anon_key, [{"name": room, "broadcast": ["progress"]}])
    try:
        sender.wait_subscribed(room)
        member.wait_subscribed(room)
        sender.command(cmd="send", channel=room, event="progress", payload={"pct": 50})
        assert sender.wait(kind("sent"))["status"] == "ok"
        got = member.wait(kind("broadcast"))["payload"]
        assert got["event"] == "progress" and got["payload"] == {"pct": 50}
        sender.command(cmd="httpSend", channel=room, event="progress", payload={"pct": 100})
        assert sender.wait(kind("http-sent"))["status"] == "ok"
        got = member.wait(kind("broadcast"))["payload"]
        assert got["payload"] == {"pct": 100} and got["meta"]["id"]
        # self: false (the default) concerns the socket push only; a REST send reaches every member, the sender too.
        # The socket push was published before its ack, so it would have reached the sender first.
        assert sender.wait(kind("broadcast"))["payload"]["payload"] == {"pct": 100}
    finally:
        sender.close()
        member.close()


def test_presence_join_sync_and_leave(api_server, anon_key):
    room = f"lobby-{uuid.uuid4().hex[:6]}"
    ada = NodeRealtimeClient(api_server.url, anon_key, anon_key,
                             [{"name": room, "config": {"presence": {"key": "ada"}}, "presence": True}])
    bob = NodeRealtimeClient(api_server.url, anon_key, anon_key,
                             [{"name": room, "config": {"presence": {"key": "bob"}}, "presence": True}])
    try:
        ada.wait_subscribed(room)
        bob.wait_subscribed(room)
        ada.command(cmd="track", channel=room, payload={"online_at": "now"})
        assert ada.wait(kind("tracked"))["status"] == "ok"
        joined = bob.wait(lambda m: m["kind"] == "presence-join" and m["key"] == "ada")
        assert joined["newPresences"][0]["online_at"] == "now" and joined["newPresences"][0]["presence_ref"]
        synced = bob.wait(lambda m: m["kind"] == "presence-sync" and "ada" in m["state"])
        assert synced["state"]["ada"][0]["online_at"] == "now"
        ada.command(cmd="untrack", channel=room)
        assert ada.wait(kind("untracked"))["status"] == "ok"
        bob.wait(lambda m: m["kind"] == "presence-leave" and m["key"] == "ada")
    finally:
        ada.close()
        bob.close()


def test_private_channels_and_replay(api_server, relay, settings, anon_key, owner_conn, rooms, user,  # noqa: F811
                                     other_user):
    sub = f"team-{uuid.uuid4().hex[:6]}"
    owner_conn.execute(f"insert into {rooms} values (%s, %s, true)", (user.id, sub))
    since = int(time.time() * 1000) - 1000
    service_sql(settings, "select realtime.send('{\"step\": \"done\"}', 'status', %s)", (sub,))
    config = {"private": True, "broadcast": {"ack": True, "replay": {"since": since, "limit": 5}}}
    member = NodeRealtimeClient(api_server.url, anon_key, user.access_token,
                                [{"name": sub, "config": config, "broadcast": ["status"]}])
    outsider = NodeRealtimeClient(api_server.url, anon_key, other_user.access_token,
                                  [{"name": sub, "config": {"private": True}, "broadcast": ["status"]}])
    try:
        member.wait_subscribed(sub)
        replayed = member.wait(kind("broadcast"))["payload"]
        assert replayed["payload"]["step"] == "done" and replayed["meta"]["replayed"] is True
        status = outsider.wait(kind("status"))
        assert status["status"] == "CHANNEL_ERROR" and "permissions to read" in status["error"]
        member.command(cmd="send", channel=sub, event="status", payload={"step": "mine"})
        assert member.wait(kind("sent"))["status"] == "ok"
    finally:
        member.close()
        outsider.close()


def test_postgres_changes_recovery_with_since_on_the_binding(api_server, relay, settings, anon_key, user):
    since = int(time.time() * 1000) - 500
    missed = insert_result(settings, user.id, prompt="missed while offline")
    client = NodeRealtimeClient(api_server.url, anon_key, user.access_token,
                                [{"name": "back", "bindings": [{**RESULTS, "since": since}]}])
    try:
        client.wait_subscribed("back")
        change = client.wait(kind("change"))["payload"]
        assert change["eventType"] == "INSERT" and change["new"]["id"] == missed
    finally:
        client.close()
