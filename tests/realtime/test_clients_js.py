"""supabase-js 2.119.0 (vsn 2.0.0) under Node against the live API + relay + Redis, the job driven by
/functions/v1/process-webhook and a `segbase worker`."""
from __future__ import annotations

import uuid

import pytest

from tests.support.clients import NodeRealtimeClient, change_events
from tests.support.realtime import insert_result, job_lifecycle

pytestmark = pytest.mark.node

RESULTS = {"event": "*", "schema": "public", "table": "segmentation_results"}
PROFILE = {"event": "UPDATE", "schema": "public", "table": "users_profile"}


def test_supabase_js_sees_its_jobs_and_credits_and_nothing_else(api_server, relay, pipeline_worker, settings, engine,
                                                                anon_key, user, other_user):
    watched = str(uuid.uuid4())
    mine = NodeRealtimeClient(api_server.url, anon_key, user.access_token, [
        {"name": "jobs", "bindings": [RESULTS, PROFILE]},
        {"name": "one-job", "bindings": [{**RESULTS, "filter": f"id=eq.{watched}"}]}])
    theirs = NodeRealtimeClient(api_server.url, anon_key, other_user.access_token,
                                [{"name": "jobs", "bindings": [RESULTS, PROFILE]}])
    try:
        for client, channel in ((mine, "jobs"), (mine, "one-job"), (theirs, "jobs")):
            client.wait_subscribed(channel)
        other_job = job_lifecycle(settings, engine, api_server.url, user, watched)

        def on(channel: str):
            return lambda m: m["kind"] == "change" and m["channel"] == channel

        jobs = []
        while not jobs or jobs[-1]["eventType"] != "DELETE":  # the pipeline's own triggers may add profile updates
            jobs.append(mine.wait(on("jobs"))["payload"])
        results = [p for p in jobs if p["table"] == "segmentation_results"]
        assert [p["eventType"] for p in results] == ["INSERT", "INSERT", "UPDATE", "UPDATE", "DELETE"]
        assert results[0]["new"]["id"] == other_job and results[0]["new"]["text_prompt"] == "not watched"
        assert [results[2]["new"]["status"], results[3]["new"]["status"]] == ["processing", "done"]
        assert results[3]["old"] == {"id": watched}
        assert results[4]["old"] == {"id": watched} and results[4]["new"] == {}
        profiles = [p for p in jobs if p["table"] == "users_profile"]
        assert profiles and all(p["eventType"] == "UPDATE" and p["new"]["id"] == user.id for p in profiles)
        assert profiles[-1]["new"]["credits"] < 50
        narrowed = [mine.wait(on("one-job"))["payload"] for _ in range(4)]
        assert [p["eventType"] for p in narrowed] == ["INSERT", "UPDATE", "UPDATE", "DELETE"]
        assert all((p["new"] or p["old"])["id"] == watched for p in narrowed)
        leftovers = change_events(mine.drain(1.0))
        assert leftovers == []
        assert change_events(theirs.drain(0.5)) == []
    finally:
        mine.close()
        theirs.close()


def test_supabase_js_with_vsn_1(api_server, relay, settings, anon_key, user):
    client = NodeRealtimeClient(api_server.url, anon_key, user.access_token,
                                [{"name": "jobs", "bindings": [RESULTS]}], vsn="1.0.0")
    try:
        client.wait_subscribed("jobs")
        result_id = insert_result(settings, user.id)
        event = client.wait(lambda m: m["kind"] == "change")["payload"]
        assert event["eventType"] == "INSERT" and event["new"]["id"] == result_id
    finally:
        client.close()
