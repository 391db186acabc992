"""supabase-py 2.34.1 (`acreate_client`, realtime vsn 1.0.0) against the live API + relay + Redis, the job driven
by /functions/v1/process-webhook and a `segbase worker`."""
from __future__ import annotations

import asyncio
import uuid

from realtime import RealtimeSubscribeStates
from supabase import acreate_client

from tests.support.realtime import job_lifecycle

RESULTS = dict(schema="public", table="segmentation_results")


async def subscribed_channel(client, name: str, bindings: list[dict], sink: asyncio.Queue):
    channel = client.channel(name)
    for binding in bindings:
        channel.on_postgres_changes(callback=lambda payload, name=name: sink.put_nowait((name, payload)), **binding)
    ready = asyncio.get_running_loop().create_future()

    def on_state(state, error):
        if not ready.done() and state in (RealtimeSubscribeStates.SUBSCRIBED, RealtimeSubscribeStates.CHANNEL_ERROR):
            ready.set_result((state, error))

    await channel.subscribe(on_state)
    state, error = await asyncio.wait_for(ready, 15)
    assert state == RealtimeSubscribeStates.SUBSCRIBED, error
    return channel


async def signed_in_client(url: str, anon_key: str, token: str):
    client = await acreate_client(url, anon_key)
    await client.realtime.set_auth(token)  # what the client does itself on a SIGNED_IN auth event
    return client


async def drain(queue: asyncio.Queue, seconds: float) -> list:
    await asyncio.sleep(seconds)
    found = []
    while not queue.empty():
        found.append(queue.get_nowait())
    return found


async def test_supabase_py_sees_its_jobs_and_credits_and_nothing_else(api_server, relay, pipeline_worker, settings,
                                                                      engine, anon_key, user, other_user):
    watched = str(uuid.uuid4())
    mine, theirs = asyncio.Queue(), asyncio.Queue()
    client = await signed_in_client(api_server.url, anon_key, user.access_token)
    other = await signed_in_client(api_server.url, anon_key, other_user.access_token)
    try:
        await subscribed_channel(client, "jobs", [dict(event="*", **RESULTS),
                                                  dict(event="UPDATE", schema="public", table="users_profile")], mine)
        await subscribed_channel(client, "one-job", [dict(event="*", filter=f"id=eq.{watched}", **RESULTS)], mine)
        await subscribed_channel(other, "jobs", [dict(event="*", **RESULTS)], theirs)

        unwatched = await asyncio.to_thread(job_lifecycle, settings, engine, api_server.url, user, watched)
        jobs, narrowed = [], []
        while not jobs or jobs[-1]["data"]["type"] != "DELETE":
            name, payload = await asyncio.wait_for(mine.get(), 15)
            (jobs if name == "jobs" else narrowed).append(payload)
        results = [p["data"] for p in jobs if p["data"]["table"] == "segmentation_results"]
        assert [(d["type"], (d.get("record") or d.get("old_record"))["id"]) for d in results] == [
            ("INSERT", unwatched), ("INSERT", watched), ("UPDATE", watched), ("UPDATE", watched), ("DELETE", watched)]
        assert [results[2]["record"]["status"], results[3]["record"]["status"]] == ["processing", "done"]
        assert results[4]["old_record"] == {"id": watched} and "record" not in results[4]
        profiles = [p["data"] for p in jobs if p["data"]["table"] == "users_profile"]
        assert profiles and profiles[-1]["record"]["credits"] < 50 and profiles[-1]["record"]["id"] == user.id
        narrowed += [payload for name, payload in await drain(mine, 0.5) if name == "one-job"]
        assert [p["data"]["type"] for p in narrowed] == ["INSERT", "UPDATE", "UPDATE", "DELETE"]
        assert await drain(theirs, 0.5) == []
    finally:
        await client.remove_all_channels()
        await other.remove_all_channels()
