"""Private channels: `config.private: true` is authorised by RLS on realtime.messages (select to receive, insert to
send), at join and again on each access_token, with Supabase's membership-table policy pattern."""
from __future__ import annotations

import time
import uuid

import pytest

from api.identity import mint_access_token
from tests.support.realtime import PhoenixSocket, service_sql


def token_for(settings, user) -> str:
    return mint_access_token(settings, session_id=user.session_id, user={"id": user.id, "email": user.email},
                             now=int(time.time())).token


@pytest.fixture
def rooms(owner_conn):
    """rooms_users(user_id, topic, can_write) and the policies of Supabase's authorization guide."""
    table = f"public.rooms_{uuid.uuid4().hex[:8]}"
    owner_conn.execute(f"create table {table} (user_id uuid, topic text, can_write boolean, primary key (user_id, topic))")
    owner_conn.execute(f"grant select on {table} to authenticated")
    member = (f"exists (select 1 from {table} r where r.user_id = (select auth.uid()) "
              f"and r.topic = (select realtime.topic()) and realtime.messages.extension in ('broadcast', 'presence')")
    read, write = f"read {table}", f"write {table}"
    owner_conn.execute(f'create policy "{read}" on realtime.messages for select to authenticated using ({member}))')
    owner_conn.execute(f'create policy "{write}" on realtime.messages for insert to authenticated '
                       f'with check ({member} and r.can_write))')
    yield table
    owner_conn.execute(f'drop policy "{read}" on realtime.messages')
    owner_conn.execute(f'drop policy "{write}" on realtime.messages')
    owner_conn.execute(f"drop table {table}")


def join_private(sock: PhoenixSocket, topic: str, token: str | None, **config) -> dict:
    return sock.join(topic, [], token, private=True, **config)["payload"]


def test_private_channels_follow_rls_on_realtime_messages(api_server, relay, settings, anon_key, owner_conn, rooms,
                                                          user, other_user):
    sub = f"team-{uuid.uuid4().hex[:6]}"
    topic = f"realtime:{sub}"
    reader = PhoenixSocket(api_server.url, anon_key, "1.0.0")
    writer = PhoenixSocket(api_server.url, anon_key, "2.0.0")
    public = PhoenixSocket(api_server.url, anon_key, "1.0.0")
    try:
        refused = join_private(reader, topic, None)  # anon: no policy lets it read
        assert refused["status"] == "error" and "permissions to read" in refused["response"]["reason"]
        assert sub in refused["response"]["reason"]
        owner_conn.execute(f"insert into {rooms} values (%s, %s, true), (%s, %s, false)",
                           (user.id, sub, other_user.id, sub))
        assert join_private(writer, topic, user.access_token, broadcast={"ack": True})["status"] == "ok"
        assert join_private(reader, topic, other_user.access_token, broadcast={"ack": True})["status"] == "ok"
        assert public.join(topic, [], None)["payload"]["status"] == "ok"  # the public topic of the same name

        ref = writer.send(topic, "broadcast", {"type": "broadcast", "event": "m", "payload": {"n": 1}},
                          join_ref=writer.join_refs[topic])
        assert writer.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)["payload"]["status"] == "ok"
        assert reader.wait(lambda m: m["event"] == "broadcast")["payload"]["payload"] == {"n": 1}

        # A member who may read but not write is told why its message was dropped (ack).
        ref = reader.send(topic, "broadcast", {"type": "broadcast", "event": "m", "payload": {"n": 2}},
                          join_ref=reader.join_refs[topic])
        reply = reader.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)["payload"]
        assert reply["status"] == "error" and "permissions to write" in reply["response"]["reason"]

        # realtime.send defaults to private: private members receive it, the public channel does not.
        service_sql(settings, "select realtime.send('{\"s\": 1}', 'db', %s)", (sub,))
        assert reader.wait(lambda m: m["event"] == "broadcast")["payload"]["payload"]["s"] == 1
        service_sql(settings, "select realtime.send('{\"s\": 2}', 'db', %s, false)", (sub,))
        assert public.wait(lambda m: m["event"] == "broadcast")["payload"]["payload"]["s"] == 2

        # Membership revoked: the next access_token re-asks RLS and ends the channel.
        owner_conn.execute(f"delete from {rooms} where user_id = %s", (other_user.id,))
        reader.send(topic, "access_token", {"access_token": token_for(settings, other_user)},
                    join_ref=reader.join_refs[topic])
        system = reader.wait(lambda m: m["event"] == "system" and m["payload"]["status"] == "error")
        assert "permissions to read" in system["payload"]["message"]
        reader.wait(lambda m: m["event"] == "phx_close")
        # The writer's refresh keeps its channel.
        writer.send(topic, "access_token", {"access_token": token_for(settings, user)},
                    join_ref=writer.join_refs[topic])
        service_sql(settings, "select realtime.send('{\"s\": 3}', 'db', %s)", (sub,))
        writer.wait(lambda m: m["event"] == "broadcast" and m["payload"]["payload"].get("s") == 3)
    finally:
        for sock in (reader, writer, public):
            sock.close()


def test_presence_on_a_private_channel_needs_the_policies(api_server, anon_key, owner_conn, rooms, user):
    sub = f"team-{uuid.uuid4().hex[:6]}"
    topic = f"realtime:{sub}"
    owner_conn.execute(f"insert into {rooms} values (%s, %s, false)", (user.id, sub))
    sock = PhoenixSocket(api_server.url, anon_key, "2.0.0")
    try:
        assert join_private(sock, topic, user.access_token, presence={"key": "u", "enabled": True})["status"] == "ok"
        assert sock.wait(lambda m: m["event"] == "presence_state")["payload"] == {}
        ref = sock.send(topic, "presence", {"type": "presence", "event": "track", "payload": {"a": 1}},
                        join_ref=sock.join_refs[topic])
        reply = sock.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)["payload"]
        assert reply["status"] == "error" and "presence" in reply["response"]["reason"]
    finally:
        sock.close()
