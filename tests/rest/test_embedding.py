"""Resource embedding through /rest/v1 over tests/rest/library.sql: every relationship kind, hints, joins, spread,
filters/order/range on embeds, embeds on RPC and write results, aggregates, and PostgREST's errors."""
from __future__ import annotations

import httpx
import psycopg
import pytest

from db.rest.builder import read_query
from db.rest.catalog import load_catalog
from db.urls import libpq_url


def get(library, path: str, *, service: bool = False, headers: dict | None = None, **params) -> httpx.Response:
    return httpx.get(f"{library.rest_url}/{path}", params=params,
                     headers={**library.headers(service=service), **(headers or {})}, timeout=20)


def ok(response: httpx.Response):
    assert response.status_code in (200, 206), response.text
    return response.json()


def test_many_to_one_is_an_object_or_null(library) -> None:
    rows = ok(get(library, "books", select="title,author:authors!author_id(name),editor:authors!editor_id(name)",
                  order="id"))
    assert rows[0] == {"title": "A Wizard of Earthsea", "author": {"name": "Ursula"}, "editor": {"name": "Octavia"}}
    assert rows[3]["editor"] is None


def test_one_to_many_is_an_array_and_rls_applies_to_embeds(library) -> None:
    rows = ok(get(library, "authors", select="name,books!author_id(id)", order="id"))
    assert rows[2] == {"name": "Iain", "books": [{"id": 4}]}  # the secret book 5 stays hidden from anon
    assert rows[3] == {"name": "Nobody", "books": []}
    service = ok(get(library, "authors", service=True, select="name,books!author_id(id)", id="eq.3"))
    assert service == [{"name": "Iain", "books": [{"id": 4}, {"id": 5}]}]


def test_one_to_one_many_to_many_and_self_reference(library) -> None:
    rows = ok(get(library, "authors", select="name,author_profiles(bio)", order="id"))
    assert rows[0]["author_profiles"] == {"bio": "Earthsea"} and rows[2]["author_profiles"] is None
    books = ok(get(library, "books", select="id,genres(name)", order="id", id="lte.2"))
    assert books == [{"id": 1, "genres": [{"name": "fantasy"}]},
                     {"id": 2, "genres": [{"name": "science fiction"}, {"name": "literary"}]}]
    mentored = ok(get(library, "authors", select="name,mentor:mentor_id(name)", id="eq.2"))
    assert mentored == [{"name": "Octavia", "mentor": {"name": "Ursula"}}]
    students = ok(get(library, "authors", select="name,students:authors(name)", id="eq.1"))
    assert students[0]["students"] in ([{"name": "Octavia"}, {"name": "Iain"}], [{"name": "Iain"}, {"name": "Octavia"}])


def test_inner_left_null_filters_and_nested_embeds(library) -> None:
    inner = ok(get(library, "authors", select="name,books!author_id!inner(title)", **{"books.title": "eq.Kindred"}))
    assert inner == [{"name": "Octavia", "books": [{"title": "Kindred"}]}]
    left = ok(get(library, "authors", select="name,books!author_id(title)", **{"books.title": "eq.Kindred"},
                  order="id"))
    assert len(left) == 4 and left[0]["books"] == [] and left[1]["books"] == [{"title": "Kindred"}]
    with_profile = ok(get(library, "authors", select="name,author_profiles(bio)", author_profiles="not.is.null",
                          order="id"))
    assert [r["name"] for r in with_profile] == ["Ursula", "Octavia"]
    without = ok(get(library, "authors", select="name,author_profiles()", author_profiles="is.null", order="id"))
    assert without == [{"name": "Iain"}, {"name": "Nobody"}]
    nested = ok(get(library, "books", select="title,authors!author_id(name,author_profiles(bio))", id="eq.3"))
    assert nested == [{"title": "Kindred", "authors": {"name": "Octavia", "author_profiles": {"bio": "Parable"}}}]


def test_embedded_order_limit_offset_and_logic(library) -> None:
    params = {"select": "name,books!author_id(id)", "id": "eq.1", "books.order": "id.desc", "books.limit": "1"}
    assert ok(get(library, "authors", **params)) == [{"name": "Ursula", "books": [{"id": 2}]}]
    params["books.offset"] = "1"
    assert ok(get(library, "authors", **params)) == [{"name": "Ursula", "books": [{"id": 1}]}]
    either = ok(get(library, "authors", select="name,books!author_id(id)", id="eq.1",
                    **{"books.or": "(id.eq.2,title.eq.Kindred)"}))
    assert either == [{"name": "Ursula", "books": [{"id": 2}]}]
    by_parent = ok(get(library, "books", select="id,authors!author_id(name)", order="authors(name).desc,id"))
    assert [r["id"] for r in by_parent] == [1, 2, 3, 4]
    assert [r["authors"]["name"] for r in by_parent] == ["Ursula", "Ursula", "Octavia", "Iain"]


def test_spread_and_aliases(library) -> None:
    spread = ok(get(library, "books", select="title,...authors!author_id(author:name)", id="eq.3"))
    assert spread == [{"title": "Kindred", "author": "Octavia"}]
    renamed = ok(get(library, "books", select="t:title,writer:authors!author_id(n:name)", id="eq.4"))
    assert renamed == [{"t": "Consider Phlebas", "writer": {"n": "Iain"}}]


def test_computed_fields_and_computed_relationships(library) -> None:
    rows = ok(get(library, "books", select="id,shout", id="eq.3"))
    assert rows == [{"id": 3, "shout": "KINDRED"}]
    assert ok(get(library, "books", select="id", shout="eq.KINDRED")) == [{"id": 3}]
    first = ok(get(library, "authors", select="name,first_book(title)", id="eq.1"))
    assert first == [{"name": "Ursula", "first_book": {"title": "A Wizard of Earthsea"}}]


def test_aggregates_when_enabled(library) -> None:
    counted = ok(get(library, "books", select="author_id,count()", order="author_id"))
    assert counted == [{"author_id": 1, "count": 2}, {"author_id": 2, "count": 1}, {"author_id": 3, "count": 1}]
    summed = ok(get(library, "authors", select="name,books!author_id(total:id.sum())", id="eq.1"))
    assert summed == [{"name": "Ursula", "books": [{"total": 3}]}]
    legacy = ok(get(library, "authors", select="name,books!author_id(count)", id="eq.1"))
    assert legacy == [{"name": "Ursula", "books": [{"count": 2}]}]


def test_embedding_errors(library) -> None:
    missing = get(library, "books", select="id,loans_nope(*)")
    assert missing.status_code == 400 and missing.json()["code"] == "PGRST200"
    assert "Could not find a relationship between 'books' and 'loans_nope'" in missing.json()["message"]
    ambiguous = get(library, "books", select="id,authors(name)")
    assert ambiguous.status_code == 300
    body = ambiguous.json()
    assert body["code"] == "PGRST201" and "authors!books_author_id_fkey" in body["hint"]
    assert {d["relationship"] for d in body["details"]} == {
        "books_author_id_fkey using books(author_id) and authors(id)",
        "books_editor_id_fkey using books(editor_id) and authors(id)"}
    not_embedded = get(library, "books", select="id", **{"authors.name": "eq.x"})
    assert not_embedded.status_code == 400 and not_embedded.json()["code"] == "PGRST108"


def test_embeds_on_rpc_and_write_representation(library) -> None:
    called = httpx.post(f"{library.rest_url}/rpc/books_of", json={"author": 1},
                        params={"select": "title,editor:authors!editor_id(name)", "order": "id.desc", "limit": "1"},
                        headers=library.headers(), timeout=20)
    assert called.status_code == 200 and called.json() == [{"title": "The Dispossessed", "editor": {"name": "Iain"}}]
    created = httpx.post(f"{library.rest_url}/loans", json={"book_id": 3, "borrower": "ann"},
                         params={"select": "borrower,books(title,authors!author_id(name))"},
                         headers=library.headers(Prefer="return=representation"), timeout=20)
    assert created.status_code == 201, created.text
    assert created.json() == [{"borrower": "ann", "books": {"title": "Kindred", "authors": {"name": "Octavia"}}}]


def test_embedded_list_is_one_statement(library) -> None:
    """One SQL statement per request, whatever the embeds: each embed is a lateral join of the one statement."""
    with psycopg.connect(libpq_url(library.settings.database_url), autocommit=True) as conn:
        catalog = load_catalog(conn, ["public"])
        statement = read_query(catalog, "authors", [("select", "name,books!author_id(title,genres(name))")])
        text = statement.as_string(conn)
    assert text.count("JOIN LATERAL") == 2 and ";" not in text


@pytest.mark.parametrize("select", ["id,authors(name", "id,...authors", "id,authors!(name)"])
def test_malformed_embeds_are_pgrst100(library, select) -> None:
    response = get(library, "books", select=select)
    assert response.status_code == 400 and response.json()["code"] == "PGRST100"
