"""The endpoint on the wire, with a raw Phoenix client, against the live API + relay + Redis."""
from __future__ import annotations

import httpx
import pytest

from tests.support.realtime import PhoenixSocket, changes, insert_result, service_sql


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
def test_join_reply_system_message_and_change_frames(api_server, relay, settings, anon_key, user, vsn):
    sock = PhoenixSocket(api_server.url, anon_key, vsn)
    try:
        bindings = [{"event": "*", "schema": "public", "table": "segmentation_results"},
                    {"event": "UPDATE", "schema": "public", "table": "segmentation_results", "filter": "status=eq.done"}]
        reply = sock.join("realtime:jobs", bindings, user.access_token)
        assert reply["payload"]["status"] == "ok", reply
        echoed = reply["payload"]["response"]["postgres_changes"]
        assert [{k: v for k, v in b.items() if k != "id"} for b in echoed] == bindings
        ids = [b["id"] for b in echoed]
        assert all(isinstance(i, int) and i > 0 for i in ids) and len(set(ids)) == 2
        system = sock.wait(lambda m: m["event"] == "system")
        assert system["payload"] == {"extension": "postgres_changes", "status": "ok",
                                     "message": "Subscribed to PostgreSQL", "channel": "jobs"}
        assert system["ref"] is None
        result_id = insert_result(settings, user.id)
        insert = sock.wait(lambda m: m["event"] == "postgres_changes")
        data = insert["payload"]["data"]
        assert insert["payload"]["ids"] == [ids[0]]
        assert data["type"] == "INSERT" and data["record"]["id"] == result_id and "old_record" not in data
        assert data["schema"] == "public" and data["table"] == "segmentation_results" and data["errors"] is None
        assert {"name": "id", "type": "uuid"} in data["columns"]
        assert data["commit_timestamp"].endswith("Z") and len(data["commit_timestamp"]) == 24
        if vsn == "2.0.0":
            assert insert["join_ref"] is None and insert["ref"] is None
        service_sql(settings, "update public.segmentation_results set status = 'done' where id = %s", (result_id,))
        update = sock.wait(lambda m: m["event"] == "postgres_changes")
        assert update["payload"]["ids"] == ids
        assert update["payload"]["data"]["old_record"] == {"id": result_id}
        service_sql(settings, "delete from public.segmentation_results where id = %s", (result_id,))
        delete = sock.wait(lambda m: m["event"] == "postgres_changes")
        assert delete["payload"]["data"]["type"] == "DELETE" and "record" not in delete["payload"]["data"]
        assert delete["payload"]["data"]["old_record"] == {"id": result_id}
        hb = sock.send("phoenix", "heartbeat", {})
        assert sock.wait(lambda m: m["topic"] == "phoenix")["ref"] == hb
        leave = sock.send("realtime:jobs", "phx_leave", {}, join_ref=reply["ref"])
        assert sock.wait(lambda m: m["event"] == "phx_reply" and m["ref"] == leave)["payload"] == {
            "status": "ok", "response": {}}
        sock.wait(lambda m: m["event"] == "phx_close")
    finally:
        sock.close()


def test_other_users_and_anon_see_nothing(api_server, relay, settings, anon_key, user, other_user):
    mine, theirs, anon = (PhoenixSocket(api_server.url, anon_key) for _ in range(3))
    try:
        binding = [{"event": "*", "schema": "public", "table": "segmentation_results"}]
        for sock, token in ((mine, user.access_token), (theirs, other_user.access_token), (anon, anon_key)):
            assert sock.join("realtime:x", binding, token)["payload"]["status"] == "ok"
        insert_result(settings, user.id)
        mine.wait(lambda m: m["event"] == "postgres_changes")
        assert changes(theirs.drain(1.0)) == [] and changes(anon.drain(0.2)) == []
    finally:
        for sock in (mine, theirs, anon):
            sock.close()


def test_flutter_stream_join_shape_live(api_server, relay, settings, anon_key, user):
    """supabase-flutter `.stream(primaryKey: ['id']).eq('user_id', uid)`: vsn 2.0.0, topic
    realtime:public:<table>:<n>, one `*` binding with the filter; its DELETE carries the primary key."""
    sock = PhoenixSocket(api_server.url, anon_key, "2.0.0")
    try:
        binding = {"event": "*", "schema": "public", "table": "segmentation_results", "filter": f"user_id=eq.{user.id}"}
        reply = sock.join("realtime:public:segmentation_results:0", [binding], user.access_token)
        assert reply["payload"]["status"] == "ok" and reply["join_ref"] == reply["ref"]
        system = sock.wait(lambda m: m["event"] == "system")
        assert system["join_ref"] == reply["ref"] and system["payload"]["channel"] == "public:segmentation_results:0"
        result_id = insert_result(settings, user.id)
        service_sql(settings, "delete from public.segmentation_results where id = %s", (result_id,))
        frames = [sock.wait(lambda m: m["event"] == "postgres_changes") for _ in range(2)]
        assert [f["payload"]["data"]["type"] for f in frames] == ["INSERT", "DELETE"]
        assert frames[1]["payload"]["data"]["old_record"] == {"id": result_id}
    finally:
        sock.close()


def test_bad_apikey_is_refused_before_the_upgrade(api_server):
    response = httpx.get(f"{api_server.url}/realtime/v1/websocket?apikey=nope&vsn=1.0.0",
                         headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status_code == 403 and "message" in response.json()


def test_compression_offered_by_the_client_is_declined_as_on_supabase(api_server, relay, settings, anon_key, user):
    sock = PhoenixSocket(api_server.url, anon_key)  # the `websockets` client offers permessage-deflate
    try:
        assert "permessage-deflate" in sock.ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in sock.ws.response.headers  # plain frames, like Phoenix's default
        binding = [{"event": "INSERT", "schema": "public", "table": "segmentation_results"}]
        assert sock.join("realtime:plain", binding, user.access_token)["payload"]["status"] == "ok"
        result_id = insert_result(settings, user.id)
        frame = sock.wait(lambda m: m["event"] == "postgres_changes")
        assert frame["payload"]["data"]["record"]["id"] == result_id
    finally:
        sock.close()
