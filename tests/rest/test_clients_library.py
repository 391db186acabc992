"""supabase-js and supabase-py over tests/rest/library.sql: resource embedding and each read-grammar feature
through the real clients' own builders (referencedTable options, textSearch, likeAnyOf, range filters, csv(),
stripNulls(), rollback(), schema(), rpc(...).select(...))."""
from __future__ import annotations

import pytest
from postgrest.exceptions import APIError
from supabase import ClientOptions, create_client

from tests.rest.test_clients_reads import run_node

EXPECTED_IDS = {
    "jsonFilter": [1, 3], "fts": [1], "plfts": [1], "phfts": [3], "wfts": [2], "likeAny": [1, 3], "ilikeAll": [2],
    "match": [2], "imatch": [4], "rangeLt": [1, 3], "rangeAdjacent": [1], "overlaps": [2, 4],
    "isDistinct": [1, 2, 4], "orArray": [1, 4],
}


def test_supabase_js_embedding_and_grammar(library) -> None:
    out = run_node("rest_library.mjs", {"url": library.api.url, "anonKey": library.anon_key})
    for name, expected in EXPECTED_IDS.items():
        assert out[name]["error"] is None, (name, out[name])
        assert [row["id"] for row in out[name]["data"]] == expected, name
    assert out["manyToOne"]["data"][0] == {"title": "A Wizard of Earthsea", "author": {"name": "Ursula"},
                                           "editor": {"name": "Octavia"}}
    assert out["manyToOne"]["data"][3]["editor"] is None
    assert out["oneToMany"]["data"][2] == {"name": "Iain", "books": [{"id": 4}]}  # RLS hides book 5
    assert out["oneToOne"]["data"] == {"name": "Ursula", "author_profiles": {"bio": "Earthsea"}}
    assert out["manyToMany"]["data"] == {"id": 2, "genres": [{"name": "science fiction"}, {"name": "literary"}]}
    assert out["selfRef"]["data"] == {"name": "Octavia", "mentor": {"name": "Ursula"}}
    assert out["inner"]["data"] == [{"name": "Octavia", "books": [{"title": "Kindred"}]}]
    assert out["referenced"]["data"] == {"name": "Ursula", "books": [{"id": 2}]}
    assert out["notNullEmbed"]["data"] == [{"name": "Ursula"}, {"name": "Octavia"}]
    assert out["spread"]["data"] == {"title": "Kindred", "author": "Octavia"}
    assert out["ambiguous"]["status"] == 300 and out["ambiguous"]["error"]["code"] == "PGRST201"
    assert out["noRelation"]["status"] == 400 and out["noRelation"]["error"]["code"] == "PGRST200"
    assert out["jsonPath"]["data"] == {"id": 1, "rating": 5, "row": "A"}
    assert out["cast"]["data"] == {"id": "4"}
    assert out["computed"]["data"] == [{"id": 3, "shout": "KINDRED"}]
    assert out["csv"]["data"] == 'id,title\n1,"A Wizard of Earthsea"\n2,"The Dispossessed"'
    assert out["stripNulls"]["data"] == [{"id": 4}]
    assert out["rollback"]["status"] == 201 and out["rollback"]["data"] == [{"borrower": "js rollback"}]
    assert out["afterRollback"]["data"] == []
    assert out["otherSchema"]["data"] == [{"body": "a note in another schema"}]
    assert out["rpcTable"]["data"] == [{"author": 1, "n": 2}, {"author": 2, "n": 1}, {"author": 3, "n": 1}]
    assert out["rpcShaped"]["data"] == {"title": "The Dispossessed", "editor": {"name": "Iain"}}
    assert out["rpcMaxAffected"]["status"] == 400 and out["rpcMaxAffected"]["error"]["code"] == "PGRST124"
    assert out["rpcComposite"]["data"] == "Composite"
    assert out["rpcCount"]["count"] == 2 and len(out["rpcCount"]["data"]) == 2
    assert out["insertEmbed"]["status"] == 201 and out["insertEmbed"]["statusText"] == "Created"
    assert out["insertEmbed"]["data"] == {"borrower": "js", "books": {"title": "Kindred"}}


@pytest.fixture(scope="module")
def py(library):
    return create_client(library.api.url, library.anon_key)


def ids(response) -> list[int]:
    return [row["id"] for row in response.data]


def test_supabase_py_embedding(py) -> None:
    rows = py.table("books").select("title, author:authors!author_id(name), editor:authors!editor_id(name)") \
        .order("id").execute().data
    assert rows[0]["author"] == {"name": "Ursula"} and rows[3]["editor"] is None
    assert py.table("authors").select("name, books!author_id(id)").eq("id", 3).single().execute().data == {
        "name": "Iain", "books": [{"id": 4}]}
    assert py.table("books").select("id, genres(name)").eq("id", 1).single().execute().data == {
        "id": 1, "genres": [{"name": "fantasy"}]}
    assert py.table("authors").select("name, mentor:mentor_id(name)").eq("id", 3).single().execute().data == {
        "name": "Iain", "mentor": {"name": "Ursula"}}
    inner = py.table("authors").select("name, books!author_id!inner(title)").eq("books.title", "Kindred").execute()
    assert inner.data == [{"name": "Octavia", "books": [{"title": "Kindred"}]}]
    limited = py.table("authors").select("name, books!author_id(id)").eq("id", 1) \
        .order("id", desc=True, foreign_table="books").limit(1, foreign_table="books").single().execute()
    assert limited.data == {"name": "Ursula", "books": [{"id": 2}]}
    spread = py.table("books").select("title, ...authors!author_id(author:name)").eq("id", 4).single().execute()
    assert spread.data == {"title": "Consider Phlebas", "author": "Iain"}
    with pytest.raises(APIError) as ambiguous:
        py.table("books").select("id, authors(name)").execute()
    assert ambiguous.value.code == "PGRST201"
    with pytest.raises(APIError) as missing:
        py.table("books").select("id, nothing(*)").execute()
    assert missing.value.code == "PGRST200"


def test_supabase_py_grammar(py, library) -> None:
    books = lambda: py.table("books").select("id").order("id")  # noqa: E731 - a fresh builder per query
    assert py.table("books").select("id, rating:meta->rating, meta->shelf->>row").eq("id", 1).single() \
        .execute().data == {"id": 1, "rating": 5, "row": "A"}
    assert ids(books().eq("meta->>rating", "5").execute()) == [1, 3]
    assert py.table("books").select("id::text").eq("id", 4).single().execute().data == {"id": "4"}
    assert ids(books().eq("shout", "KINDRED").execute()) == [3]
    assert ids(books().text_search("summary", "wizard", {"config": "english"}).execute()) == [1]
    assert ids(books().plfts("summary", "true names").execute()) == [1]
    assert ids(books().phfts("summary", "back in time").execute()) == [3]
    assert ids(books().wfts("summary", "physicist -wizard").execute()) == [2]
    assert ids(books().like_any_of("title", "%Earth%,%Kind%").execute()) == [1, 3]
    assert ids(books().ilike_all_of("title", "%the%,%dis%").execute()) == [2]
    assert ids(books().filter("title", "match", "^The").execute()) == [2]
    assert ids(books().filter("title", "imatch", "phlebas$").execute()) == [4]
    # supabase-py sends a tuple as an exclusive range: (300,400) is [301,400) for int4range
    assert ids(books().range_lt("pages", (300, 400)).execute()) == [1, 3]
    assert ids(books().range_gt("pages", (1, 450)).execute()) == [4]
    assert ids(books().range_adjacent("pages", (199, 250)).execute()) == [1]
    assert ids(books().overlaps("pages", "[350,600)").execute()) == [2, 4]
    assert ids(books().range_lte("pages", (0, 300)).execute()) == [1, 3]
    assert ids(books().range_gte("pages", (99, 200)).execute()) == [4]
    assert ids(books().filter("editor_id", "isdistinct", "1").execute()) == [1, 2, 4]
    assert ids(books().or_("tags.cs.{fantasy,classic},id.eq.4").execute()) == [1, 4]
    assert py.table("books").select("id, editor_id").eq("id", 4).strip_nulls().execute().data == [{"id": 4}]
    csv = py.table("books").select("id, title").lte("id", 2).order("id").csv().execute()
    assert csv.data == 'id,title\n1,"A Wizard of Earthsea"\n2,"The Dispossessed"'
    extra = create_client(library.api.url, library.anon_key, options=ClientOptions(schema="extra"))
    assert extra.table("notes").select("body").execute().data == [{"body": "a note in another schema"}]


def test_supabase_py_rpc(py) -> None:
    assert py.rpc("book_counts").execute().data == [{"author": 1, "n": 2}, {"author": 2, "n": 1},
                                                   {"author": 3, "n": 1}]
    shaped = py.rpc("books_of", {"author": 1}).select("title, editor:authors!editor_id(name)").eq("id", 2) \
        .single().execute()
    assert shaped.data == {"title": "The Dispossessed", "editor": {"name": "Iain"}}
    assert py.rpc("title_of", {"book": {"id": 9, "title": "Composite", "author_id": 1}}).execute().data == "Composite"
    counted = py.rpc("books_of", {"author": 1}, count="exact").select("id").execute()
    assert counted.count == 2
    with pytest.raises(APIError) as strict:
        py.rpc("add_loan", {"book": 2, "who": "py strict"}).max_affected(0).execute()
    assert strict.value.code == "PGRST124"
    loan = py.table("loans").insert({"book_id": 3, "borrower": "py"}).select("borrower, books(title)").execute()
    assert loan.data == [{"borrower": "py", "books": {"title": "Kindred"}}]
