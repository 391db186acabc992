"""The real clients read through /rest/v1: supabase-py (sync) and supabase-js 2.119.0 under Node."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from postgrest.exceptions import APIError
from supabase import create_client

ROOT = Path(__file__).resolve().parents[2]
MISSING = "00000000-0000-0000-0000-000000000000"


def tables_of(seeded) -> dict[str, dict[str, str]]:
    return {
        "projects": {"id": seeded.projects[0], "orderBy": "created_at"},
        "segmentation_results": {"id": seeded.results[0], "orderBy": "text_prompt"},
        "usage_logs": {"id": seeded.usage[0], "orderBy": "created_at"},
        "users_profile": {"id": seeded.user.id, "orderBy": "display_name"},
    }


def own_ids(seeded, table: str) -> set[str]:
    return {"projects": set(seeded.projects), "segmentation_results": set(seeded.results),
            "usage_logs": set(seeded.usage), "users_profile": {seeded.user.id}}[table]


def run_node(script: str, config: dict) -> dict:
    completed = subprocess.run(["node", "--experimental-websocket", "--no-warnings", str(ROOT / "tests" / "node" / script), json.dumps(config)],
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_supabase_js_reads(api_server, alice, bob, anon_key, service_key) -> None:
    out = run_node("rest_reads.mjs", {"url": api_server.url, "anonKey": anon_key, "serviceKey": service_key,
                                      "accessToken": alice.user.access_token, "tables": tables_of(alice)})
    for table, spec in tables_of(alice).items():
        r = out[table]
        assert r["list"]["error"] is None and {row["id"] for row in r["list"]["data"]} == own_ids(alice, table)
        assert [row["id"] for row in r["filtered"]["data"]] == [spec["id"]]
        assert spec["id"] not in {row["id"] for row in r["notIn"]["data"]}
        assert {row["id"] for row in r["ordered"]["data"]} == own_ids(alice, table)
        assert r["page"]["count"] == len(own_ids(alice, table)) and len(r["page"]["data"]) == 1
        assert r["single"]["data"]["id"] == spec["id"]
        assert r["singleMissing"]["error"]["code"] == "PGRST116" and r["singleMissing"]["status"] == 406
        assert r["maybeNone"]["data"] is None and r["maybeNone"]["error"] is None
        assert r["maybeOne"]["data"] == {"id": spec["id"]}
        assert r["head"]["data"] is None and r["head"]["count"] == len(own_ids(alice, table))
        assert r["anon"]["data"] == [] and r["anon"]["error"] is None
        assert r["service"]["count"] == 1
    prompts_order = [row["id"] for row in out["segmentation_results"]["ordered"]["data"]]
    assert prompts_order[-1] == alice.results[-1]  # the null text_prompt sorts last (.nullslast)
    assert len(out["orFilter"]["data"]) == 2
    assert len(out["ilike"]["data"]) == 4
    assert len(out["inList"]["data"]) == 2
    assert out["badColumn"]["error"]["code"] == "42703" and out["badColumn"]["status"] == 400


@pytest.fixture(scope="module")
def py_user(api_server, alice, anon_key):
    client = create_client(api_server.url, anon_key)
    client.postgrest.auth(alice.user.access_token)
    return client


def test_supabase_py_reads(py_user, api_server, alice, bob, anon_key, service_key) -> None:
    anon = create_client(api_server.url, anon_key)
    service = create_client(api_server.url, service_key)
    for table, spec in tables_of(alice).items():
        listed = py_user.table(table).select("*").execute()
        assert {row["id"] for row in listed.data} == own_ids(alice, table)
        assert [r["id"] for r in py_user.table(table).select("id").eq("id", spec["id"]).execute().data] == [spec["id"]]
        ordered = py_user.table(table).select("id").order(spec["orderBy"], desc=True, nullsfirst=False).execute()
        assert {row["id"] for row in ordered.data} == own_ids(alice, table)
        page = py_user.table(table).select("id", count="exact").order("id").range(0, 0).execute()
        assert page.count == len(own_ids(alice, table)) and len(page.data) == 1
        assert py_user.table(table).select("*").eq("id", spec["id"]).single().execute().data["id"] == spec["id"]
        with pytest.raises(APIError) as missing:
            py_user.table(table).select("*").eq("id", MISSING).single().execute()
        assert missing.value.code == "PGRST116"
        assert py_user.table(table).select("*").eq("id", MISSING).maybe_single().execute() is None
        assert py_user.table(table).select("id").eq("id", spec["id"]).maybe_single().execute().data == {
            "id": spec["id"]}
        assert anon.table(table).select("id").execute().data == []
        assert service.table(table).select("id", count="exact").eq("id", spec["id"]).execute().count == 1
        assert py_user.table(table).select("id").in_("id", [spec["id"], MISSING]).execute().data == [
            {"id": spec["id"]}]
    # bob's token sees none of alice's rows
    bob_client = create_client(api_server.url, anon_key)
    bob_client.postgrest.auth(bob.user.access_token)
    assert bob_client.table("segmentation_results").select("id").in_("id", alice.results).execute().data == []
    nulls_last = py_user.table("segmentation_results").select("id").order(
        "text_prompt", desc=True, nullsfirst=False).execute().data
    assert nulls_last[-1]["id"] == alice.results[-1]
    with pytest.raises(APIError) as bad:
        py_user.table("segmentation_results").select("id").filter("id", "bogus", "1").execute()
    assert bad.value.code == "PGRST100"
