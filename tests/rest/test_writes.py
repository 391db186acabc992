"""Writes, upsert and RPC through /rest/v1 against a live API: status codes per Prefer, RLS and privileges,
PostgreSQL errors and trigger rules in PostgREST's shape, and an injection table that changes nothing."""
from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from db.urls import libpq_url
from tests.rest.test_reads import assert_error
from tests.support.factories import create_user
from tests.support.rest import seed

JS_PREFER = "missing=default, return=representation"


@pytest.fixture
def carol(settings):
    return seed(settings, create_user(settings, credits=20, display_name="Carol"), results=4)


@pytest.fixture
def dave(settings):
    return seed(settings, create_user(settings, credits=20, display_name="Dave"), results=2)


def headers(user, key, **extra):
    return {**user.headers(key), **extra}


def project_names(owner_conn, user_id):
    return sorted(r[0] for r in owner_conn.execute("select name from public.projects where user_id = %s",
                                                   (user_id,)).fetchall())


def test_insert_status_codes_per_prefer(http, rest_url, carol, anon_key, owner_conn) -> None:
    url = f"{rest_url}/projects"
    plain = http.post(url, json={"name": "js default"}, headers=headers(carol.user, anon_key))
    assert plain.status_code == 201 and plain.content == b"" and plain.headers["Content-Range"] == "*/*"
    minimal = http.post(url, json={"name": "minimal"}, headers=headers(carol.user, anon_key,
                                                                        Prefer="return=minimal"))
    assert minimal.status_code == 201 and minimal.content == b""
    rep = http.post(url, params={"select": "name,description"}, json={"name": "rep", "description": "d"},
                    headers=headers(carol.user, anon_key, Prefer="return=representation"))
    assert rep.status_code == 201 and rep.json() == [{"name": "rep", "description": "d"}]
    full = http.post(url, json={"name": "full"}, headers=headers(carol.user, anon_key,
                                                                  Prefer="return=representation"))
    row = full.json()[0]
    assert row["user_id"] == carol.user.id and row["id"] and row["created_at"]  # defaults applied
    single = http.post(url, json={"name": "single"}, headers=headers(
        carol.user, anon_key, Prefer="return=representation", Accept="application/vnd.pgrst.object+json"))
    assert single.status_code == 201 and single.json()["name"] == "single"
    assert {"js default", "minimal", "rep", "full", "single"} <= set(project_names(owner_conn, carol.user.id))


def test_bulk_insert_with_columns_and_missing_default(http, rest_url, carol, anon_key) -> None:
    url = f"{rest_url}/projects"
    rows = [{"name": "bulk a"}, {"name": "bulk b", "description": "has one"}]
    response = http.post(url, params={"columns": '"name","description"', "select": "*"}, json=rows,
                         headers=headers(carol.user, anon_key, Prefer=JS_PREFER))
    assert response.status_code == 201, response.text
    created = response.json()
    assert [r["name"] for r in created] == ["bulk a", "bulk b"]
    assert created[0]["description"] is None and created[1]["description"] == "has one"
    assert all(r["user_id"] == carol.user.id for r in created)  # DEFAULT auth.uid(), not NULL
    counted = http.post(url, json=[{"name": "c1"}, {"name": "c2"}],
                        headers=headers(carol.user, anon_key, Prefer="return=minimal,count=exact"))
    assert counted.status_code == 201 and counted.headers["Content-Range"] == "*/2"
    mismatch = http.post(url, json=[{"name": "x"}, {"description": "y"}], headers=headers(carol.user, anon_key))
    assert_error(mismatch, 400, "PGRST102")
    empty = http.post(url, json=[], headers=headers(carol.user, anon_key, Prefer="return=representation"))
    assert empty.status_code == 201 and empty.json() == []


def test_upsert_merge_and_ignore_duplicates(http, rest_url, carol, anon_key, owner_conn) -> None:
    url = f"{rest_url}/projects"
    project_id = carol.projects[0]
    merged = http.post(url, params={"on_conflict": "id", "select": "id,name"},
                       json={"id": project_id, "user_id": carol.user.id, "name": "merged"},
                       headers=headers(carol.user, anon_key, Prefer="resolution=merge-duplicates, return=representation"))
    # nothing inserted: 200, as PostgREST (201 once a row is inserted)
    assert merged.status_code == 200 and merged.json() == [{"id": project_id, "name": "merged"}]
    assert merged.reason_phrase == "OK"
    merged_minimal = http.post(url, params={"on_conflict": "id"},
                               json={"id": project_id, "user_id": carol.user.id, "name": "merged"},
                               headers=headers(carol.user, anon_key, Prefer="resolution=merge-duplicates"))
    assert merged_minimal.status_code == 200 and merged_minimal.content == b""
    ignored = http.post(url, params={"on_conflict": "id"},
                        json={"id": project_id, "user_id": carol.user.id, "name": "ignored"},
                        headers=headers(carol.user, anon_key,
                                        Prefer="return=representation,resolution=ignore-duplicates"))
    assert ignored.status_code == 201 and ignored.json() == []
    fresh_id = str(uuid.uuid4())
    inserted = http.post(url, json={"id": fresh_id, "user_id": carol.user.id, "name": "via upsert"},
                         headers=headers(carol.user, anon_key, Prefer="resolution=merge-duplicates"))
    assert inserted.status_code == 201 and inserted.reason_phrase == "Created"
    names = dict(owner_conn.execute("select id::text, name from public.projects where id in (%s, %s)",
                                    (project_id, fresh_id)).fetchall())
    assert names == {project_id: "merged", fresh_id: "via upsert"}
    # without resolution a duplicate key is a 409
    duplicate = http.post(url, json={"id": project_id, "name": "dup"}, headers=headers(carol.user, anon_key))
    assert_error(duplicate, 409, "23505")  # PostgreSQL omits the key values on an RLS table
    assert_error(http.post(url, params={"on_conflict": "nope"}, json={"name": "x"},
                           headers=headers(carol.user, anon_key, Prefer="resolution=merge-duplicates")),
                 400, "PGRST204")
    assert_error(http.post(url, params={"on_conflict": "name"}, json={"name": "x"},
                           headers=headers(carol.user, anon_key, Prefer="resolution=merge-duplicates")),
                 400, "42P10")


def test_upsert_cannot_take_over_another_users_row(http, rest_url, carol, dave, anon_key, owner_conn) -> None:
    response = http.post(f"{rest_url}/projects", params={"on_conflict": "id"},
                         json={"id": dave.projects[0], "user_id": carol.user.id, "name": "stolen"},
                         headers=headers(carol.user, anon_key, Prefer="resolution=merge-duplicates"))
    assert_error(response, 403, "42501")
    assert "stolen" not in project_names(owner_conn, carol.user.id) + project_names(owner_conn, dave.user.id)


def test_patch_and_delete(http, rest_url, carol, dave, anon_key, owner_conn) -> None:
    url = f"{rest_url}/projects"
    renamed = http.patch(url, params={"id": f"eq.{carol.projects[0]}"}, json={"name": "renamed"},
                         headers=headers(carol.user, anon_key))
    assert renamed.status_code == 204 and renamed.content == b""
    rep = http.patch(url, params={"id": f"eq.{carol.projects[0]}", "select": "name"}, json={"name": "again"},
                     headers=headers(carol.user, anon_key, Prefer="return=representation"))
    assert rep.status_code == 200 and rep.json() == [{"name": "again"}] and rep.headers["Content-Range"] == "0-0/*"
    # RLS hides dave's project: nothing changes, no error, empty representation (like PostgREST)
    other = http.patch(url, params={"id": f"eq.{dave.projects[0]}"}, json={"name": "hijacked"},
                       headers=headers(carol.user, anon_key, Prefer="return=representation"))
    assert other.status_code == 200 and other.json() == [] and other.headers["Content-Range"] == "*/*"
    gone = http.delete(url, params={"id": f"eq.{dave.projects[0]}"}, headers=headers(carol.user, anon_key))
    assert gone.status_code == 204
    assert "hijacked" not in project_names(owner_conn, dave.user.id)
    assert len(project_names(owner_conn, dave.user.id)) == 2
    # a project's deletion keeps its results, with project_id null (py sends DELETE with a `{}` body)
    deleted = http.request("DELETE", url, params={"id": f"eq.{carol.projects[1]}"}, content=b"{}",
                           headers=headers(carol.user, anon_key, Prefer="return=representation",
                                           **{"Content-Type": "application/json"}))
    assert deleted.status_code == 200 and [r["id"] for r in deleted.json()] == [carol.projects[1]]
    orphans = owner_conn.execute("select count(*) from public.segmentation_results where user_id = %s "
                                 "and project_id is null", (carol.user.id,)).fetchone()[0]
    assert orphans == 2
    singular = http.patch(url, params={"name": "eq.none-such"}, json={"name": "x"}, headers=headers(
        carol.user, anon_key, Accept="application/vnd.pgrst.object+json"))
    assert_error(singular, 406, "PGRST116")


def test_singular_write_of_many_rows_rolls_back(http, rest_url, carol, anon_key, owner_conn) -> None:
    response = http.patch(f"{rest_url}/projects", params={"user_id": f"eq.{carol.user.id}"},
                          json={"description": "all"}, headers=headers(
                              carol.user, anon_key, Prefer="return=representation",
                              Accept="application/vnd.pgrst.object+json"))
    assert_error(response, 406, "PGRST116")
    assert owner_conn.execute("select count(*) from public.projects where user_id = %s and description = 'all'",
                              (carol.user.id,)).fetchone()[0] == 0
    strict = http.patch(f"{rest_url}/projects", params={"user_id": f"eq.{carol.user.id}"},
                        json={"description": "all"},
                        headers=headers(carol.user, anon_key, Prefer="handling=strict, max-affected=1"))
    assert_error(strict, 400, "PGRST124")


def test_unfiltered_patch_and_delete_are_refused(http, rest_url, carol, anon_key, service_key, owner_conn) -> None:
    before = owner_conn.execute("select count(*) from public.projects").fetchone()[0]
    for method in ("PATCH", "DELETE"):
        for h in (headers(carol.user, anon_key), {"apikey": service_key}):
            response = http.request(method, f"{rest_url}/projects", json={"name": "everything"}, headers=h)
            body = assert_error(response, 400, "21000")
            assert "WHERE" in body["message"]
        assert_error(http.request(method, f"{rest_url}/projects?id=eq.{carol.projects[0]}&limit=1",
                                  json={"name": "x"}, headers=headers(carol.user, anon_key)), 400, "PGRST100")
    assert owner_conn.execute("select count(*) from public.projects").fetchone()[0] == before
    assert owner_conn.execute("select count(*) from public.projects where name = 'everything'").fetchone()[0] == 0


def test_privileges_and_rls_errors(http, rest_url, carol, dave, anon_key, service_key, owner_conn) -> None:
    # anon: 401 with 42501; a signed-in user: 403
    assert_error(http.post(f"{rest_url}/projects", json={"name": "anon"}, headers={"apikey": anon_key}),
                 401, "42501")
    assert_error(http.post(f"{rest_url}/projects", json={"name": "x", "user_id": dave.user.id},
                           headers=headers(carol.user, anon_key)), 403, "42501")
    assert_error(http.post(f"{rest_url}/usage_logs", json={"user_id": carol.user.id, "action": "upload"},
                           headers=headers(carol.user, anon_key)), 403, "42501")
    # column privileges: credits, tier and a result's status are not the user's to change
    for table, row_id, patch in (("users_profile", carol.user.id, {"credits": 999}),
                                 ("users_profile", carol.user.id, {"tier": "enterprise"}),
                                 ("segmentation_results", carol.results[0], {"status": "done"})):
        response = http.patch(f"{rest_url}/{table}", params={"id": f"eq.{row_id}"}, json=patch,
                              headers=headers(carol.user, anon_key))
        assert_error(response, 403, "42501")
    credits, tier = owner_conn.execute("select credits, tier::text from public.users_profile where id = %s",
                                       (carol.user.id,)).fetchone()
    assert (credits, tier) == (20, "free")
    assert owner_conn.execute("select status::text from public.segmentation_results where id = %s",
                              (carol.results[0],)).fetchone()[0] == "pending"
    # anon deleting or patching affects nothing
    assert http.delete(f"{rest_url}/projects", params={"id": f"eq.{carol.projects[0]}"},
                       headers={"apikey": anon_key}).status_code in (204, 401)
    assert len(project_names(owner_conn, carol.user.id)) == 2


def test_database_errors_map_like_postgrest(http, rest_url, carol, anon_key, service_key) -> None:
    h = headers(carol.user, anon_key)
    assert_error(http.post(f"{rest_url}/projects", json={"name": None}, headers=h), 400, "23502")
    assert_error(http.post(f"{rest_url}/projects", json={"name": "x", "id": "not-a-uuid"}, headers=h), 400, "22P02")
    service = {"apikey": service_key}
    assert_error(http.post(f"{rest_url}/usage_logs", json={"user_id": carol.user.id, "action": "upload",
                                                           "credits_used": -1}, headers=service), 400, "23514")
    assert_error(http.post(f"{rest_url}/usage_logs", json={"user_id": str(uuid.uuid4()), "action": "upload"},
                           headers=service), 409, "23503")
    assert_error(http.post(f"{rest_url}/projects", json={"nope": 1}, headers=h), 400, "PGRST204")
    assert_error(http.patch(f"{rest_url}/projects?id=eq.{carol.projects[0]}", json={"nope": 1}, headers=h),
                 400, "PGRST204")
    assert_error(http.post(f"{rest_url}/projects", content=b"{not json", headers={
        **h, "Content-Type": "application/json"}), 400, "PGRST102")
    assert_error(http.post(f"{rest_url}/projects", json=[1, 2], headers=h), 400, "PGRST102")
    assert_error(http.post(f"{rest_url}/projects", content=b"[" * 100_000, headers={
        **h, "Content-Type": "application/json"}), 400, "PGRST102")
    assert_error(http.patch(f"{rest_url}/projects?id=eq.{carol.projects[0]}", json=[{"name": "x"}], headers=h),
                 400, "PGRST102")
    assert_error(http.post(f"{rest_url}/nope", json={}, headers=h), 404, "PGRST205")
    assert_error(http.put(f"{rest_url}/projects?id=eq.{carol.projects[0]}", json={"name": "x"}, headers=h),
                 405, "PGRST117")
    assert_error(http.post(f"{rest_url}/projects", json={"name": "x"}, headers={**h, "Content-Profile": "auth"}),
                 406, "PGRST106")


def test_service_role_writes(http, rest_url, carol, service_key, owner_conn) -> None:
    service = {"apikey": service_key, "Authorization": f"Bearer {service_key}"}
    logged = http.post(f"{rest_url}/usage_logs", json={"user_id": carol.user.id, "action": "upload",
                                                       "credits_used": 0, "metadata": {"bytes": 1024}},
                       headers={**service, "Prefer": "return=representation"})
    assert logged.status_code == 201 and logged.json()[0]["action"] == "upload"
    assert logged.json()[0]["metadata"] == {"bytes": 1024}
    updated = http.patch(f"{rest_url}/segmentation_results", params={"id": f"eq.{carol.results[0]}"},
                         json={"status": "processing", "metadata": {"worker": "w1"}},
                         headers={**service, "Prefer": "return=representation"})
    assert updated.status_code == 200, updated.text
    assert updated.json()[0]["status"] == "processing" and updated.json()[0]["metadata"] == {"worker": "w1"}


def test_rpc(http, rest_url, carol, anon_key, service_key) -> None:
    h = headers(carol.user, anon_key)
    summary = http.post(f"{rest_url}/rpc/my_credit_summary", json={}, headers=h)
    assert summary.status_code == 200, summary.text
    assert summary.json()["user_id"] == carol.user.id and summary.json()["results_total"] == 4
    via_get = http.get(f"{rest_url}/rpc/count_my_results", params={"status": "pending"}, headers=h)
    assert via_get.status_code == 200 and via_get.json() == 1
    assert http.post(f"{rest_url}/rpc/count_my_results", json={}, headers=h).json() == 4
    assert http.post(f"{rest_url}/rpc/count_my_results", headers=h).json() == 4  # no body at all
    assert_error(http.post(f"{rest_url}/rpc/count_my_results", json={"nope": 1}, headers=h), 404, "PGRST202")
    assert_error(http.post(f"{rest_url}/rpc/count_my_results", json={"status": "bogus"}, headers=h), 400, "22P02")
    assert_error(http.post(f"{rest_url}/rpc/my_credit_summary", json={}, headers={"apikey": anon_key}),
                 401, "42501")
    # internal functions and trigger functions are not reachable
    for name in ("config_int", "handle_new_user", "update_updated_at", "uid", "pg_sleep"):
        assert_error(http.post(f"{rest_url}/rpc/{name}", json={}, headers=h), 404, "PGRST202")
    assert_error(http.post(f"{rest_url}/rpc/my_credit_summary", json=[1], headers=h), 400, "PGRST102")


def test_rpc_get_refuses_volatile_and_trigger_rules_keep_their_code(http, rest_url, carol, anon_key,
                                                                     settings) -> None:
    suffix = uuid.uuid4().hex[:8]
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute(f"""
            create function public.rest_test_rule_{suffix}() returns void language plpgsql as $$
            begin
              raise exception using errcode = 'PT402', message = 'Not enough credits', detail = 'needs 1',
                                    hint = 'insufficient_credits';
            end $$;
            create function public.rest_test_raise_{suffix}(n int) returns int language plpgsql as $$
            begin
              if n < 0 then raise exception 'n must be positive'; end if;
              return n * 2;
            end $$;
            create function public.rest_test_void_{suffix}() returns void language sql as $$ select $$;
            create function public.rest_test_rows_{suffix}() returns setof public.projects
              language sql stable as $$ select * from public.projects $$;
            notify pgrst, 'reload schema';
        """)
    try:
        check_rpc_rules(http, rest_url, headers(carol.user, anon_key), suffix, carol)
    finally:  # the session database is shared: leave no function anon/authenticated could execute
        with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
            for name in ("rule", "raise", "void", "rows"):
                conn.execute(f"drop function if exists public.rest_test_{name}_{suffix}")
            conn.execute("notify pgrst, 'reload schema'")


def check_rpc_rules(http, rest_url, h, suffix, carol) -> None:
    rule = http.post(f"{rest_url}/rpc/rest_test_rule_{suffix}", json={}, headers=h)
    assert rule.status_code == 402 and rule.json() == {"code": "insufficient_credits", "message": "Not enough credits",
                                                      "details": "needs 1", "hint": None}
    assert_error(http.post(f"{rest_url}/rpc/rest_test_raise_{suffix}", json={"n": -1}, headers=h), 400, "P0001")
    assert http.post(f"{rest_url}/rpc/rest_test_raise_{suffix}", json={"n": 21}, headers=h).json() == 42
    assert_error(http.get(f"{rest_url}/rpc/rest_test_raise_{suffix}", params={"n": 1}, headers=h), 405, "PGRST101")
    void = http.post(f"{rest_url}/rpc/rest_test_void_{suffix}", json={}, headers=h)
    assert void.status_code == 204 and void.content == b""
    rows = http.get(f"{rest_url}/rpc/rest_test_rows_{suffix}", headers=h).json()
    assert {r["id"] for r in rows} == set(carol.projects)  # security invoker: RLS applies


def test_pipeline_credit_reservation_rule_reaches_the_client(http, rest_url, anon_key, settings, owner_conn) -> None:
    """When the pipeline's reservation trigger is installed, submitting without credits is its 402."""
    installed = owner_conn.execute("select exists (select from pg_trigger where tgname = "
                                   "'segmentation_results_reserve_credits')").fetchone()[0]
    if not installed:
        pytest.skip("credit reservation trigger not on this branch")
    broke = create_user(settings, credits=0)
    response = http.post(f"{rest_url}/segmentation_results", json={"source_image_url": "https://img.example/a.png"},
                         headers=broke.headers(anon_key))
    assert response.status_code == 402 and response.json()["code"] == "insufficient_credits"
    assert owner_conn.execute("select count(*) from public.segmentation_results where user_id = %s",
                              (broke.id,)).fetchone()[0] == 0


HOSTILE_WRITES = [
    ("POST", {}, {"name": "x", "name\"; drop table public.projects; --": 1}),
    ("POST", {}, {"name": "x", "user_id) values (1); --": 1}),
    ("POST", {"columns": 'name,"description"); drop table public.projects; --'}, {"name": "x"}),
    ("POST", {"columns": "name,(select 1)"}, {"name": "x"}),
    ("POST", {"on_conflict": "id) do nothing; drop table public.projects; --"}, {"name": "x"}),
    ("POST", {"on_conflict": "id,(1)"}, {"name": "x"}),
    ("POST", {"select": "id,(select 1)"}, {"name": "x"}),
    ("POST", {}, {"name": {"$ne": 1}, "id": ["1"]}),
    ("POST", {}, [{"name": "ok"}, {"name": "ok", "evil'": 1}]),
    ("PATCH", {"id": "eq.1' or '1'='1"}, {"name": "x"}),
    ("PATCH", {"id": "not.is.null) or (true"}, {"name": "x"}),
    ("PATCH", {"or": "(id.is.null,true)"}, {"name": "x"}),
    ("PATCH", {"id": "neq.00000000-0000-0000-0000-000000000000"}, {"name = 'x', user_id": "x"}),
    ("PATCH", {"id": "neq.00000000-0000-0000-0000-000000000000"}, {"user_id": "00000000-0000-0000-0000-000000000000"}),
    ("POST", {}, {"name": "nul \x00 byte"}),
    ("POST", {}, {"name": "x", "id": [[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]}),
    ("PATCH", {"name": "eq.\x00"}, {"name": "x"}),
    ("DELETE", {"id; drop table public.projects": "eq.1"}, None),
    ("DELETE", {"select": "*", "apikey": "x"}, None),
]


@pytest.mark.parametrize("method,params,body", HOSTILE_WRITES)
def test_injection_table_for_writes(http, rest_url, carol, anon_key, owner_conn, method, params, body) -> None:
    snapshot = "select coalesce(string_agg(id::text || name || coalesce(description, ''), ',' order by id), '') " \
               "from public.projects"
    before = owner_conn.execute(snapshot).fetchone()[0]
    kwargs = {"content": json.dumps(body).encode(), "headers": {**headers(carol.user, anon_key),
                                                                 "Content-Type": "application/json",
                                                                 "Prefer": "resolution=merge-duplicates,return=representation"}}
    response = http.request(method, f"{rest_url}/projects", params=params, **(kwargs if body is not None else {
        "headers": headers(carol.user, anon_key)}))
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert owner_conn.execute(snapshot).fetchone()[0] == before
    assert owner_conn.execute("select to_regclass('public.projects') is not null").fetchone()[0]
