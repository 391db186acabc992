"""The rest of PostgREST's read grammar through /rest/v1 over tests/rest/library.sql (JSON paths, casts, full-text,
like/ilike any/all, regex, range operators, isdistinct, CSV, nulls=stripped, tx=rollback, profiles), and the RPC
behaviours the postgrest-js suite checks (TABLE returns, shaping POST results, max-affected, composite and unnamed
arguments, counts, overload errors)."""
from __future__ import annotations

import httpx
import psycopg
import pytest

from db.urls import libpq_url


def get(library, path: str, *, headers: dict | None = None, **params) -> httpx.Response:
    return httpx.get(f"{library.rest_url}/{path}", params=params, headers={**library.headers(), **(headers or {})},
                     timeout=20)


def post(library, path: str, body, *, headers: dict | None = None, **params) -> httpx.Response:
    return httpx.post(f"{library.rest_url}/{path}", params=params, json=body,
                      headers={**library.headers(), **(headers or {})}, timeout=20)


def ids(library, **params) -> list[int]:
    response = get(library, "books", select="id", order="id", **params)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()]


def test_json_paths_in_select_filters_and_order(library) -> None:
    row = get(library, "books", select="id,rating:meta->rating,meta->shelf->>row", id="eq.1").json()
    assert row == [{"id": 1, "rating": 5, "row": "A"}]
    assert ids(library, **{"meta->>rating": "eq.5"}) == [1, 3]
    assert ids(library, **{"meta->shelf->>row": "eq.B"}) == [2]
    ordered = get(library, "books", select="id", order="meta->rating.desc.nullslast,id").json()
    assert [r["id"] for r in ordered] == [1, 3, 2, 4]


def test_casts(library) -> None:
    assert get(library, "books", select="id::text,pages::text", id="eq.4").json() == [{"id": "4", "pages": "[500,700)"}]
    unknown = get(library, "books", select="id::nosuchtype")
    assert unknown.status_code == 400


@pytest.mark.parametrize(("params", "expected"), [
    ({"summary": "fts(english).wizard"}, [1]),
    ({"summary": "plfts.true names"}, [1]),
    ({"summary": "phfts(english).back in time"}, [3]),
    ({"summary": "wfts(english).physicist -wizard"}, [2]),
    ({"summary": "not.fts(english).wizard"}, [2, 3]),
    ({"title": "like(any).{*Earth*,*Kind*}"}, [1, 3]),
    ({"title": "ilike(all).{*the*,*dis*}"}, [2]),
    ({"title": "match.^The"}, [2]),
    ({"title": "imatch.phlebas$"}, [4]),
    ({"pages": "sl.[300,400)"}, [1, 3]),
    ({"pages": "sr.[1,450)"}, [4]),
    ({"pages": "adj.[200,250)"}, [1]),
    ({"pages": "ov.[350,600)"}, [2, 4]),
    ({"pages": "nxr.[1,300)"}, [1, 3]),
    ({"pages": "nxl.[100,200)"}, [4]),
    ({"editor_id": "isdistinct.1"}, [1, 2, 4]),
    ({"tags": "cs.{scifi,classic}"}, [2]),
    ({"or": "(tags.cs.{fantasy,classic},id.eq.4)"}, [1, 4]),
    ({"and": "(tags.ov.{space,fantasy},not.or(id.eq.1,id.eq.2))"}, [4]),
])
def test_operators(library, params, expected) -> None:
    assert ids(library, **params) == expected


def test_csv_and_stripped_nulls(library) -> None:
    csv = get(library, "books", headers={"Accept": "text/csv"}, select="id,title", id="lte.2", order="id")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text == 'id,title\n1,"A Wizard of Earthsea"\n2,"The Dispossessed"'  # record text, as PostgREST
    stripped = get(library, "books", headers={"Accept": "application/vnd.pgrst.array+json;nulls=stripped"},
                   select="id,editor_id", id="eq.4")
    assert stripped.json() == [{"id": 4}]
    one = get(library, "books", headers={"Accept": "application/vnd.pgrst.object+json;nulls=stripped"},
              select="id,editor_id", id="eq.4")
    assert one.json() == {"id": 4}


def test_tx_rollback_answers_and_changes_nothing(library) -> None:
    response = post(library, "loans", {"book_id": 1, "borrower": "rolled back"},
                    headers={"Prefer": "return=representation,tx=rollback"})
    assert response.status_code == 201 and response.json()[0]["borrower"] == "rolled back"
    assert "tx=rollback" in response.headers["Preference-Applied"]
    with psycopg.connect(libpq_url(library.settings.database_url)) as conn:
        assert conn.execute("select count(*) from public.loans where borrower = 'rolled back'").fetchone()[0] == 0


def test_profiles_choose_an_exposed_schema(library) -> None:
    notes = get(library, "notes", headers={"Accept-Profile": "extra"})
    assert notes.status_code == 200 and notes.json() == [{"id": 1, "body": "a note in another schema"}]
    assert notes.headers["Content-Profile"] == "extra"
    assert get(library, "notes").status_code == 404  # not in the default schema
    refused = get(library, "notes", headers={"Accept-Profile": "internal"})
    assert refused.status_code == 406 and refused.json()["code"] == "PGRST106"


def test_explain_plans_are_off(library) -> None:
    response = get(library, "books", headers={"Accept": "application/vnd.pgrst.plan+json"})
    assert response.status_code == 406 and response.json()["code"] == "PGRST107"


def test_aggregates_are_off_by_default(http, rest_url, alice, anon_key) -> None:
    response = http.get(f"{rest_url}/segmentation_results", params={"select": "count()"},
                        headers=alice.user.headers(anon_key))
    assert response.status_code == 400 and response.json()["code"] == "PGRST123"


# --- RPC -----------------------------------------------------------------------------------------------------

def test_rpc_table_returns_every_column(library) -> None:
    response = post(library, "rpc/book_counts", {})
    assert response.status_code == 200
    assert response.json() == [{"author": 1, "n": 2}, {"author": 2, "n": 1}, {"author": 3, "n": 1}]
    assert get(library, "rpc/book_counts", n="gt.1").json() == [{"author": 1, "n": 2}]


def test_post_rpc_applies_select_filters_order_range_and_singular(library) -> None:
    filtered = post(library, "rpc/books_of", {"author": 1}, select="title", id="eq.2")
    assert filtered.json() == [{"title": "The Dispossessed"}]
    single = post(library, "rpc/books_of", {"author": 1}, headers={"Accept": "application/vnd.pgrst.object+json"},
                  select="id", order="id.desc", limit="1")
    assert single.status_code == 200 and single.json() == {"id": 2}
    counted = post(library, "rpc/books_of", {"author": 1}, headers={"Prefer": "count=exact"}, select="id",
                   offset="1")
    assert counted.headers["Content-Range"] == "1-1/2" and counted.json() == [{"id": 2}]


def test_rpc_max_affected_is_enforced_and_rolls_back(library) -> None:
    response = post(library, "rpc/add_loan", {"book": 2, "who": "too many"},
                    headers={"Prefer": "handling=strict,max-affected=0"})
    assert response.status_code == 400 and response.json()["code"] == "PGRST124"
    with psycopg.connect(libpq_url(library.settings.database_url)) as conn:
        assert conn.execute("select count(*) from public.loans where borrower = 'too many'").fetchone()[0] == 0


def test_rpc_composite_and_unnamed_arguments(library) -> None:
    titled = post(library, "rpc/title_of", {"book": {"id": 9, "title": "Composite", "author_id": 1}})
    assert titled.status_code == 200 and titled.json() == "Composite"
    echoed = post(library, "rpc/echo", {"any": ["json", 1]})
    assert echoed.status_code == 200 and echoed.json() == {"any": ["json", 1]}


def test_rpc_ambiguous_overload_names_the_types(library) -> None:
    response = get(library, "rpc/pick", v="1")
    assert response.status_code == 300
    body = response.json()
    assert body["code"] == "PGRST203" and "integer" in body["message"] and "text" in body["message"]
    assert body["hint"]


def test_reason_phrases_are_spelled_like_postgrest(library) -> None:
    created = post(library, "loans", {"book_id": 1, "borrower": "phrase"})
    assert created.status_code == 201 and created.reason_phrase == "Created"
    assert get(library, "nope").reason_phrase == "Not Found"
