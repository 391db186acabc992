"""Reads through /rest/v1 against a live API: the grammar, headers, RLS and PostgREST's error shapes."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta
from urllib.parse import quote

import jwt
import psycopg
import pytest

from db.urls import libpq_url
from tests.support.processes import wait_for

RESULTS = "segmentation_results"


def get(http, rest_url, path, headers, **params):
    return http.get(f"{rest_url}/{path}", params=params, headers=headers)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details", "hint"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_select_list_star_and_alias(http, rest_url, alice, anon_key) -> None:
    h = alice.user.headers(anon_key)
    rows = get(http, rest_url, RESULTS, h, select="id,status").json()
    assert len(rows) == 5 and all(set(r) == {"id", "status"} for r in rows)
    everything = get(http, rest_url, RESULTS, h, select="*", id=f"eq.{alice.results[0]}").json()
    assert list(everything[0])[:3] == ["id", "user_id", "project_id"]  # table order, like PostgREST
    assert set(everything[0]) >= {"source_image_url", "text_prompt", "status", "labels", "metadata", "created_at"}
    renamed = get(http, rest_url, "users_profile", h, select="balance:credits,display_name").json()
    assert renamed == [{"balance": 50, "display_name": "Alice"}]


def test_comparison_filters(http, rest_url, alice, anon_key) -> None:
    h = alice.user.headers(anon_key)
    first = alice.results[0]
    assert [r["id"] for r in get(http, rest_url, RESULTS, h, select="id", id=f"eq.{first}").json()] == [first]
    assert first not in [r["id"] for r in get(http, rest_url, RESULTS, h, select="id", id=f"neq.{first}").json()]
    created = (alice.base + timedelta(minutes=2)).isoformat()
    counts = {op: len(get(http, rest_url, RESULTS, h, select="id", created_at=f"{op}.{created}").json())
              for op in ("gt", "gte", "lt", "lte")}
    assert counts == {"gt": 2, "gte": 3, "lt": 2, "lte": 3}
    assert len(get(http, rest_url, RESULTS, h, text_prompt="like.cat*").json()) == 4
    assert len(get(http, rest_url, RESULTS, h, text_prompt="ilike.CAT%1").json()) == 1
    assert len(get(http, rest_url, RESULTS, h, status="like.pend*").json()) == 2  # enum compared as text
    assert len(get(http, rest_url, RESULTS, h, text_prompt="is.null").json()) == 1
    assert len(get(http, rest_url, RESULTS, h, text_prompt="not.is.null").json()) == 4
    assert len(get(http, rest_url, RESULTS, h, status="in.(done,error)").json()) == 2
    assert len(get(http, rest_url, RESULTS, h, status='in.("done","error")').json()) == 2
    assert len(get(http, rest_url, RESULTS, h, status="not.in.(done,error)").json()) == 3
    assert len(get(http, rest_url, RESULTS, h, text_prompt='in.("cat 1","cat,2")').json()) == 1
    assert get(http, rest_url, RESULTS, h, status="in.()").json() == []
    assert len(get(http, rest_url, RESULTS, h, labels='cs.["label1"]').json()) == 1
    # repeated keys are ANDed
    start, end = (quote((alice.base + timedelta(minutes=m)).isoformat()) for m in (0, 4))
    both = http.get(f"{rest_url}/{RESULTS}?created_at=gt.{start}&created_at=lt.{end}", headers=h).json()
    assert len(both) == 3


def test_logic_trees(http, rest_url, alice, anon_key) -> None:
    h = alice.user.headers(anon_key)
    rows = get(http, rest_url, RESULTS, h, select="id", **{"or": "(status.eq.done,text_prompt.is.null)"}).json()
    assert len(rows) == 2
    rows = get(http, rest_url, RESULTS, h, **{"or": '(and(status.eq.pending,text_prompt.eq."cat 0"),status.eq.done)'}).json()
    assert len(rows) == 2
    rows = get(http, rest_url, RESULTS, h, **{"not.or": "(status.eq.pending,status.eq.processing)"}).json()
    assert {r["status"] for r in rows} == {"done", "error"}


def test_order_with_nulls_and_several_columns(http, rest_url, alice, anon_key) -> None:
    h = alice.user.headers(anon_key)
    prompts = [r["text_prompt"] for r in get(http, rest_url, RESULTS, h, select="text_prompt",
                                             order="text_prompt.desc.nullslast").json()]
    assert prompts == ["cat 3", "cat 2", "cat 1", "cat 0", None]
    prompts = [r["text_prompt"] for r in get(http, rest_url, RESULTS, h, select="text_prompt",
                                             order="text_prompt.asc.nullsfirst").json()]
    assert prompts == [None, "cat 0", "cat 1", "cat 2", "cat 3"]
    rows = get(http, rest_url, RESULTS, h, select="status,created_at", order="status.asc,created_at.desc").json()
    assert [r["status"] for r in rows] == ["pending", "pending", "processing", "done", "error"]
    assert rows[0]["created_at"] > rows[1]["created_at"]
    newest = get(http, rest_url, RESULTS, h, select="id", order="created_at.desc.nullslast", limit=1).json()
    assert newest == [{"id": alice.results[-1]}]


def test_limit_offset_range_and_counts(http, rest_url, alice, anon_key) -> None:
    h = alice.user.headers(anon_key)
    page = get(http, rest_url, RESULTS, h, select="id", order="created_at.asc", limit=2, offset=1)
    assert page.status_code == 200 and page.headers["Content-Range"] == "1-2/*"
    assert [r["id"] for r in page.json()] == alice.results[1:3]
    counted = get(http, rest_url, RESULTS, {**h, "Prefer": "count=exact"}, select="id", order="created_at.asc",
                  limit=2, offset=1)
    assert counted.status_code == 206 and counted.headers["Content-Range"] == "1-2/5"
    whole = get(http, rest_url, RESULTS, {**h, "Prefer": "count=exact"}, select="id")
    assert whole.status_code == 200 and whole.headers["Content-Range"] == "0-4/5"
    ranged = get(http, rest_url, RESULTS, {**h, "Range": "3-9"}, select="id", order="created_at.asc")
    assert [r["id"] for r in ranged.json()] == alice.results[3:] and ranged.headers["Content-Range"] == "3-4/*"
    empty = get(http, rest_url, RESULTS, h, status="eq.done", text_prompt="is.null")
    assert empty.json() == [] and empty.headers["Content-Range"] == "*/*"
    empty = get(http, rest_url, RESULTS, {**h, "Prefer": "count=exact"}, status="eq.done", text_prompt="is.null")
    assert empty.headers["Content-Range"] == "*/0"
    assert_error(get(http, rest_url, RESULTS, {**h, "Prefer": "count=exact"}, offset=50), 416, "PGRST103")
    assert_error(get(http, rest_url, RESULTS, h, limit="-1"), 400, "PGRST100")
    assert_error(get(http, rest_url, RESULTS, {**h, "Range": "9-3"}), 416, "PGRST103")


def test_limit_is_capped_by_rest_max_rows(http, rest_url, alice, anon_key, settings) -> None:
    rows = get(http, rest_url, RESULTS, alice.user.headers(anon_key), limit=10 ** 9).json()
    assert len(rows) == 5 <= settings.rest_max_rows


def test_object_accept_and_head(http, rest_url, alice, anon_key) -> None:
    h = {**alice.user.headers(anon_key), "Accept": "application/vnd.pgrst.object+json"}
    one = get(http, rest_url, RESULTS, h, id=f"eq.{alice.results[0]}")
    assert one.status_code == 200 and one.json()["id"] == alice.results[0]
    assert one.headers["Content-Type"].startswith("application/vnd.pgrst.object+json")
    none = assert_error(get(http, rest_url, RESULTS, h, id=f"eq.{uuid.uuid4()}"), 406, "PGRST116")
    assert none["details"] == "The result contains 0 rows"
    many = assert_error(get(http, rest_url, RESULTS, h), 406, "PGRST116")
    assert many["details"] == "The result contains 5 rows"
    head = http.head(f"{rest_url}/{RESULTS}", headers={**alice.user.headers(anon_key), "Prefer": "count=exact"})
    assert head.status_code == 200 and head.content == b"" and head.headers["Content-Range"] == "0-4/5"
    geojson = get(http, rest_url, RESULTS, {**alice.user.headers(anon_key), "Accept": "application/geo+json"})
    assert_error(geojson, 406, "PGRST107")


def test_rls_decides_who_sees_what(http, rest_url, alice, bob, anon_key, service_key) -> None:
    for table, key in (("projects", "projects"), (RESULTS, "results"), ("usage_logs", "usage")):
        mine = {r["id"] for r in get(http, rest_url, table, alice.user.headers(anon_key), select="id").json()}
        assert mine == set(getattr(alice, key)), table
        assert get(http, rest_url, table, {"apikey": anon_key}).json() == []
        # Narrowed to the two users: other tests share this database, and a read returns at most REST_MAX_ROWS.
        everyone = {r["id"] for r in get(http, rest_url, table, {"apikey": service_key, "Authorization":
                                                                  f"Bearer {service_key}"}, select="id",
                                         user_id=f"in.({alice.user.id},{bob.user.id})").json()}
        assert everyone >= set(getattr(alice, key)) | set(getattr(bob, key)), table
    profiles = get(http, rest_url, "users_profile", bob.user.headers(anon_key), select="id").json()
    assert profiles == [{"id": bob.user.id}]
    # a filter naming another user's row just finds nothing
    assert get(http, rest_url, RESULTS, bob.user.headers(anon_key), id=f"eq.{alice.results[0]}").json() == []


def test_token_errors(http, rest_url, settings, alice, anon_key) -> None:
    url = f"{rest_url}/projects"
    missing = http.get(url)
    assert missing.status_code == 401 and missing.json()["message"] == "No API key found in request"
    invalid = http.get(url, headers={"apikey": "not-a-key"})
    assert invalid.status_code == 401 and invalid.json()["message"] == "Invalid API key"
    assert http.get(f"{url}?apikey={anon_key}").status_code == 200  # ?apikey= works like the header
    assert_error(http.get(url, headers={"apikey": anon_key, "Authorization": "Bearer abc"}), 401, "PGRST301")
    forged = jwt.encode({"sub": alice.user.id, "role": "authenticated", "aud": "authenticated",
                         "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    assert_error(http.get(url, headers={"apikey": anon_key, "Authorization": f"Bearer {forged}"}), 401, "PGRST301")
    claims = jwt.decode(alice.user.access_token, options={"verify_signature": False})
    expired = jwt.encode({**claims, "exp": int(time.time()) - 3600}, settings.jwt_secret.get_secret_value(),
                         algorithm="HS256")
    body = assert_error(http.get(url, headers={"apikey": anon_key, "Authorization": f"Bearer {expired}"}),
                        401, "PGRST303")
    assert "expired" in body["message"]
    gone = jwt.encode({**claims, "session_id": str(uuid.uuid4())}, settings.jwt_secret.get_secret_value(),
                      algorithm="HS256")
    assert_error(http.get(url, headers={"apikey": anon_key, "Authorization": f"Bearer {gone}"}), 401, "PGRST303")


def test_query_errors(http, rest_url, alice, anon_key) -> None:
    h = alice.user.headers(anon_key)
    body = assert_error(get(http, rest_url, "segmentation_result", h), 404, "PGRST205")
    assert "segmentation_results" in body["hint"]
    assert_error(get(http, rest_url, "pg_user", h), 404, "PGRST205")
    assert_error(get(http, rest_url, RESULTS, h, select="nope"), 400, "42703")
    assert_error(get(http, rest_url, RESULTS, h, nope="eq.1"), 400, "42703")
    assert_error(get(http, rest_url, RESULTS, h, order="nope.desc"), 400, "42703")
    assert_error(get(http, rest_url, RESULTS, h, select="id,projectz(name)"), 400, "PGRST200")
    assert_error(get(http, rest_url, RESULTS, h, id="nope.x"), 400, "PGRST100")
    assert_error(get(http, rest_url, RESULTS, h, select="id.sum()"), 400, "PGRST123")
    assert_error(get(http, rest_url, RESULTS, h, id="eq.not-a-uuid"), 400, "22P02")
    assert_error(get(http, rest_url, RESULTS, h, status="eq.bogus"), 400, "22P02")
    assert_error(get(http, rest_url, RESULTS, {**h, "Accept-Profile": "internal"}), 406, "PGRST106")
    assert get(http, rest_url, RESULTS, {**h, "Accept-Profile": "public", "Content-Profile": "public"}).status_code == 200


HOSTILE_READS = [
    {"select": 'id,"status"; drop table public.projects; --'},
    {"select": "id,(select 1)"},
    {"select": "*,pg_sleep(1)"},
    {"order": "id;drop table public.projects"},
    {"order": 'status.asc,"id" desc'},
    {"order": "(select 1)"},
    {"id; drop table public.projects; --": "eq.1"},
    {'"id"': "eq.1"},
    {"status": "eq.x' or '1'='1"},
    {"status": "in.(done') or true --)"},
    {"id": "in.(" + ",".join(["1"] * 1001) + ")"},
    {"status": "sql.1=1"},
    {"or": "(id.eq.1) or true"},
    {"or": "(status.eq.done,id.eq.1); delete from public.projects"},
    {"text_prompt": "like.%' or 1=1 --", "status": "eq.nope"},
    {"limit": "1; drop table public.projects"},
    {"offset": "1e3"},
    {"created_at": "gt.2026-01-01 or 1=1"},
    {"metadata->>n); drop table public.projects; --": "eq.1"},
    {"select": "id::text); drop table public.projects; --"},
    {"select": "id::\"text\""},
    {"text_prompt": "eq.a\x00b"},
    {"or": "(text_prompt.eq.\x00)"},
]


@pytest.mark.parametrize("params", HOSTILE_READS)
def test_injection_table_for_reads(http, rest_url, alice, anon_key, owner_conn, params) -> None:
    before = owner_conn.execute("select count(*) from public.projects").fetchone()[0]
    response = http.get(f"{rest_url}/{RESULTS}", params=params, headers=alice.user.headers(anon_key))
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"code", "message", "details", "hint"}
    assert owner_conn.execute("select count(*) from public.projects").fetchone()[0] == before
    assert owner_conn.execute("select to_regclass('public.projects') is not null").fetchone()[0]


def test_hostile_table_names(http, rest_url, alice, anon_key) -> None:
    for name in ('projects";drop table x;--', "auth.users", "..%2Finternal", "projects%00"):
        response = http.get(f"{rest_url}/{name}", headers=alice.user.headers(anon_key))
        assert 400 <= response.status_code < 500, (name, response.text)


def test_schema_cache_reloads_after_migrations_notify(http, rest_url, alice, anon_key, settings) -> None:
    name = f"rest_reload_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute(f"create table public.{name} (id int primary key, note text)")
        conn.execute(f"insert into public.{name} values (1, 'hello')")
        conn.execute(f"grant select on public.{name} to authenticated")
        conn.execute("notify pgrst, 'reload schema'")
    h = alice.user.headers(anon_key)
    wait_for(lambda: get(http, rest_url, name, h).status_code == 200, timeout=15, message="new table served")
    assert get(http, rest_url, name, h).json() == [{"id": 1, "note": "hello"}]
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute(f"alter table public.{name} add column extra int default 7")
        conn.execute("notify pgrst, 'reload schema'")
    wait_for(lambda: get(http, rest_url, name, h, select="extra").status_code == 200, timeout=15,
             message="new column served")
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute(f"drop table public.{name}")
        conn.execute("notify pgrst, 'reload schema'")
    # only the notification can tell the cache about a drop (the database alone would answer 42P01)
    wait_for(lambda: get(http, rest_url, name, h).json().get("code") == "PGRST205", timeout=15,
             message="dropped table gone from the schema cache")
