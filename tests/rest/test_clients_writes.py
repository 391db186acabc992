"""The original specification's write flows with the real clients (supabase-js 2.119.0 under Node, supabase-py sync)."""
from __future__ import annotations

import uuid

import pytest
from postgrest.exceptions import APIError
from supabase import create_client

from tests.rest.test_clients_reads import run_node
from tests.support.factories import create_user
from tests.support.rest import seed


@pytest.fixture
def writer(settings):
    return seed(settings, create_user(settings, credits=20, display_name="Writer"), results=3)


@pytest.fixture
def stranger(settings):
    return seed(settings, create_user(settings, credits=20), results=1)


def test_supabase_js_write_flows(api_server, writer, stranger, anon_key, service_key, owner_conn) -> None:
    done_result = writer.results[2]  # seeded as `done`
    out = run_node("rest_writes.mjs", {
        "url": api_server.url, "anonKey": anon_key, "serviceKey": service_key, "userToken": writer.user.access_token,
        "otherToken": stranger.user.access_token, "userId": writer.user.id, "doneResultId": done_result})
    assert out["project"]["status"] == 201 and out["project"]["data"]["user_id"] == writer.user.id
    assert out["plainInsert"]["status"] == 201 and out["plainInsert"]["data"] is None
    assert out["bulk"]["data"] == [{"name": "js bulk 1", "description": None}, {"name": "js bulk 2", "description": "d"}]
    assert out["result"]["data"]["status"] == "pending" and out["result"]["data"]["user_id"] == writer.user.id
    assert out["displayName"]["data"][0]["display_name"] == "JS Name"
    assert out["rename"]["data"] == [{"name": "js renamed"}]
    assert out["otherRename"]["data"] == [] and out["otherRename"]["error"] is None
    assert out["otherDelete"]["status"] == 204
    assert out["anonInsert"]["error"]["code"] == "42501" and out["anonInsert"]["status"] == 401
    for key in ("credits", "tier", "status"):
        assert out[key]["error"]["code"] == "42501" and out[key]["status"] == 403, key
    assert out["deleteProject"]["status"] == 204
    assert out["resultAfter"]["data"]["project_id"] is None  # the result outlives its project
    assert out["deleteDone"]["data"] == [{"id": done_result}]
    assert out["upload"]["data"]["action"] == "upload" and out["upload"]["status"] == 201
    assert out["serviceUpdate"]["data"] == [{"status": "processing"}]
    assert out["upsert"]["data"][0]["name"] == "js upsert v1"
    assert out["upsertAgain"]["data"][0]["name"] == "js upsert v2"
    assert out["rpc"]["data"]["user_id"] == writer.user.id and out["rpc"]["data"]["credits"] >= 0
    assert out["rpcGet"]["data"] == 2  # the seeded processing result and the new one
    assert out["rpcAnon"]["status"] == 401 and out["rpcAnon"]["error"]["code"] == "42501"
    assert out["unfiltered"]["status"] == 400 and out["unfiltered"]["error"]["code"] == "21000"
    profile = owner_conn.execute("select display_name, credits, tier::text from public.users_profile where id = %s",
                                 (writer.user.id,)).fetchone()
    assert profile[0] == "JS Name" and profile[2] == "free" and profile[1] <= 20
    stranger_projects = owner_conn.execute("select count(*) from public.projects where user_id = %s",
                                           (stranger.user.id,)).fetchone()[0]
    assert stranger_projects == 2


def test_supabase_py_write_flows(api_server, writer, stranger, anon_key, service_key, owner_conn) -> None:
    user = create_client(api_server.url, anon_key)
    user.postgrest.auth(writer.user.access_token)
    other = create_client(api_server.url, anon_key)
    other.postgrest.auth(stranger.user.access_token)
    anon = create_client(api_server.url, anon_key)
    service = create_client(api_server.url, service_key)

    project = user.table("projects").insert({"name": "py project"}).execute().data[0]
    assert project["user_id"] == writer.user.id
    bulk = user.table("projects").insert([{"name": "py 1"}, {"name": "py 2", "description": "x"}],
                                         default_to_null=False).execute()
    assert sorted(r["name"] for r in bulk.data) == ["py 1", "py 2"]
    result = user.table("segmentation_results").insert({
        "project_id": project["id"], "source_image_url": "https://img.example/py.png", "text_prompt": "a dog",
    }).execute().data[0]
    assert result["status"] == "pending"
    renamed = user.table("users_profile").update({"display_name": "Py Name"}).eq("id", writer.user.id).execute()
    assert renamed.data[0]["display_name"] == "Py Name"
    assert user.table("projects").update({"name": "py renamed"}).eq("id", project["id"]).execute().data[0][
        "name"] == "py renamed"
    assert other.table("projects").update({"name": "hijack"}).eq("id", project["id"]).execute().data == []
    assert other.table("projects").delete().eq("id", project["id"]).execute().data == []
    with pytest.raises(APIError) as anon_error:
        anon.table("projects").insert({"name": "anon"}).execute()
    assert anon_error.value.code == "42501"
    for table, row_id, patch in (("users_profile", writer.user.id, {"credits": 10 ** 6}),
                                 ("users_profile", writer.user.id, {"tier": "enterprise"}),
                                 ("segmentation_results", result["id"], {"status": "done"}),
                                 ("usage_logs", str(uuid.uuid4()), {"credits_used": 0})):
        with pytest.raises(APIError) as denied:
            user.table(table).update(patch).eq("id", row_id).execute()
        assert denied.value.code == "42501", table
    deleted = user.table("projects").delete().eq("id", project["id"]).execute()
    assert [r["id"] for r in deleted.data] == [project["id"]]
    assert user.table("segmentation_results").select("project_id").eq("id", result["id"]).single().execute().data == {
        "project_id": None}
    assert user.table("segmentation_results").delete().eq("id", writer.results[2]).execute().data[0]["id"] == \
        writer.results[2]
    # a pending result cannot be deleted (DB rule): nothing happens
    assert user.table("segmentation_results").delete().eq("id", result["id"]).execute().data == []

    upload = service.table("usage_logs").insert({"user_id": writer.user.id, "action": "upload"}).execute()
    assert upload.data[0]["action"] == "upload"
    progressed = service.table("segmentation_results").update({"status": "processing"}).eq(
        "id", result["id"]).execute()
    assert progressed.data[0]["status"] == "processing"

    key = str(uuid.uuid4())
    first = user.table("projects").upsert({"id": key, "user_id": writer.user.id, "name": "v1"},
                                          on_conflict="id").execute()
    second = user.table("projects").upsert({"id": key, "user_id": writer.user.id, "name": "v2"},
                                           on_conflict="id").execute()
    assert first.data[0]["name"] == "v1" and second.data[0]["name"] == "v2"
    kept = user.table("projects").upsert({"id": key, "user_id": writer.user.id, "name": "v3"}, on_conflict="id",
                                         ignore_duplicates=True).execute()
    assert kept.data == []
    assert owner_conn.execute("select name from public.projects where id = %s", (key,)).fetchone()[0] == "v2"

    summary = user.rpc("my_credit_summary").execute().data
    assert summary["user_id"] == writer.user.id and summary["tier"] == "free"
    assert user.rpc("count_my_results", {"status": "processing"}, get=True).execute().data == 2
    with pytest.raises(APIError) as unfiltered:
        user.table("projects").delete().execute()
    assert unfiltered.value.code == "21000"
    profile = owner_conn.execute("select display_name, tier::text from public.users_profile where id = %s",
                                 (writer.user.id,)).fetchone()
    assert profile == ("Py Name", "free")
