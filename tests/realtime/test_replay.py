"""No missed status after a reconnect: Broadcast Replay on private channels, and postgres_changes recovery from the
outbox with `since` — replayed before live frames, authorised as the caller, each message once per join."""
from __future__ import annotations

import time
import uuid

import pytest

from tests.realtime.test_private import rooms  # noqa: F401  (the membership-policy fixture)
from tests.support.realtime import PhoenixSocket, insert_result, service_sql

RESULTS = {"event": "*", "schema": "public", "table": "segmentation_results"}


def now_ms() -> int:
    return int(time.time() * 1000)


def test_broadcast_replay_on_a_private_channel(api_server, relay, settings, anon_key, owner_conn, rooms, user):  # noqa: F811
    sub = f"jobs-{uuid.uuid4().hex[:6]}"
    topic = f"realtime:{sub}"
    owner_conn.execute(f"insert into {rooms} values (%s, %s, true)", (user.id, sub))
    since = now_ms() - 1000
    for step in ("queued", "processing", "done"):
        service_sql(settings, "select realtime.send(jsonb_build_object('step', %s::text), 'status', %s)", (step, sub))
    sock = PhoenixSocket(api_server.url, anon_key, "2.0.0")
    public = PhoenixSocket(api_server.url, anon_key, "1.0.0")
    try:
        reply = sock.join(topic, [], user.access_token, private=True,
                          broadcast={"replay": {"since": since, "limit": 2}})
        assert reply["payload"]["status"] == "ok", reply
        replayed = [sock.wait(lambda m: m["event"] == "broadcast") for _ in range(2)]
        assert [m["payload"]["payload"]["step"] for m in replayed] == ["processing", "done"]  # newest 2, oldest first
        assert all(m["payload"]["meta"]["replayed"] is True and m["join_ref"] == reply["join_ref"] for m in replayed)
        service_sql(settings, "select realtime.send('{\"step\": \"live\"}', 'status', %s)", (sub,))
        live = sock.wait(lambda m: m["event"] == "broadcast")
        assert live["payload"]["payload"]["step"] == "live" and "replayed" not in live["payload"]["meta"]

        refused = public.join(topic, [], None, broadcast={"replay": {"since": since}})
        assert refused["payload"]["response"]["reason"] == \
            "UnableToReplayMessages: Replay is not allowed for public channels"
        bad = sock.join(f"realtime:{sub}-x", [], user.access_token, private=True,
                        broadcast={"replay": {"since": "yesterday"}})
        assert bad["payload"]["response"]["reason"] == "UnableToReplayMessages: Replay params are not valid"
    finally:
        sock.close()
        public.close()


@pytest.mark.parametrize("where", ["binding", "postgres_changes_options", "broadcast"])
def test_a_rejoin_with_since_receives_the_missed_changes_first(api_server, relay, settings, anon_key, user,
                                                               other_user, where):
    since = now_ms() - 500
    missed = insert_result(settings, user.id, prompt="missed")
    service_sql(settings, "update public.segmentation_results set status = 'processing' where id = %s", (missed,))
    insert_result(settings, other_user.id, prompt="not yours")
    binding, config = dict(RESULTS), {}
    if where == "binding":  # supabase-js: .on('postgres_changes', {..., since}, ...)
        binding["since"] = since
    elif where == "postgres_changes_options":  # supabase-js: config.postgres_changes_options
        config["postgres_changes_options"] = {"since": since}
    else:  # supabase-py: config.broadcast is passed through as given
        config["broadcast"] = {"ack": False, "self": False, "postgres_changes_since": since}
    sock = PhoenixSocket(api_server.url, anon_key, "1.0.0")
    try:
        assert sock.join("realtime:back", [binding], user.access_token, **config)["payload"]["status"] == "ok"
        live = insert_result(settings, user.id, prompt="live")
        got = [sock.wait(lambda m: m["event"] == "postgres_changes") for _ in range(3)]
        seen = [(m["payload"]["data"]["type"], m["payload"]["data"]["record"]["id"]) for m in got]
        assert seen == [("INSERT", missed), ("UPDATE", missed), ("INSERT", live)]
        assert got[1]["payload"]["data"]["record"]["status"] == "processing"
        rest = [m for m in sock.drain(1.0) if m["event"] == "postgres_changes"]
        assert rest == []  # nothing twice, nothing of the other user
    finally:
        sock.close()


def test_since_as_an_iso_timestamp_and_a_bad_value(api_server, relay, settings, anon_key, user):
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 2)) + "Z"
    missed = insert_result(settings, user.id, prompt="missed")
    sock = PhoenixSocket(api_server.url, anon_key, "2.0.0")
    try:
        reply = sock.join("realtime:iso", [{**RESULTS, "since": start}], user.access_token)
        assert reply["payload"]["status"] == "ok"
        change = sock.wait(lambda m: m["event"] == "postgres_changes")
        assert change["payload"]["data"]["record"]["id"] == missed
        bad = sock.join("realtime:bad", [{**RESULTS, "since": "last tuesday"}], user.access_token)
        assert bad["payload"]["status"] == "error" and "since" in bad["payload"]["response"]["reason"]
    finally:
        sock.close()
