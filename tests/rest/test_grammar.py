"""Pure logic without a database: the URL grammar parser and the PostgreSQL → HTTP error mapping."""
from __future__ import annotations

import pytest

from api.rest.errors import _status_for
from db.rest.grammar import (
    Condition,
    Filters,
    GrammarError,
    Logic,
    OrderItem,
    SelectItem,
    parse_columns,
    parse_filter,
    parse_order,
    parse_select,
    split_top_level,
)


def test_select_lists() -> None:
    assert parse_select(None) == [SelectItem("*")]
    assert parse_select("*") == [SelectItem("*")]
    assert parse_select(" id , name ") == [SelectItem("id"), SelectItem("name")]
    assert parse_select('total:credits,"display name"') == [SelectItem("credits", "total"),
                                                            SelectItem("display name")]


@pytest.mark.parametrize("text", ["id,author(name)", "...author(name)", "id::text", "metadata->a", "id,,name",
                                  'a"b', "count()"])
def test_select_outside_the_subset(text: str) -> None:
    with pytest.raises(GrammarError):
        parse_select(text)


def filters_of(*pairs: tuple[str, str]) -> list:
    filters = Filters()
    for key, value in pairs:
        parse_filter(filters, key, value)
    return filters.items


def test_top_level_values_are_taken_literally() -> None:
    assert filters_of(("name", 'eq."quoted"')) == [Condition("name", "eq", '"quoted"')]


def test_operators_and_negation() -> None:
    assert filters_of(("id", "eq.5")) == [Condition("id", "eq", "5")]
    assert filters_of(("id", "not.gte.5")) == [Condition("id", "gte", "5", True)]
    assert filters_of(("name", "like.*a%")) == [Condition("name", "like", "*a%")]
    assert filters_of(("name", "is.NULL")) == [Condition("name", "is", "null")]
    assert filters_of(("name", "not.is.null")) == [Condition("name", "is", "null", True)]


def test_in_lists_accept_every_client_quoting() -> None:
    # supabase-py: quotes elements with reserved characters; js: wraps without escaping; Dart: quotes everything
    assert filters_of(("id", 'in.(1,2,"a,b")'))[0].value == ["1", "2", "a,b"]
    assert filters_of(("id", 'in.("a","b \\"c\\"")'))[0].value == ["a", 'b "c"']
    assert filters_of(("id", "in.()"))[0].value == []
    assert filters_of(("id", "not.in.(x)")) == [Condition("id", "in", ["x"], True)]


def test_logic_trees() -> None:
    [tree] = filters_of(("or", '(name.eq.a,and(id.gt.1,id.lt.9),not.or(x.is.null,y.in.(1,2)),z.eq."p,q")'))
    assert tree == Logic("or", (
        Condition("name", "eq", "a"),
        Logic("and", (Condition("id", "gt", "1"), Condition("id", "lt", "9"))),
        Logic("or", (Condition("x", "is", "null"), Condition("y", "in", ["1", "2"])), True),
        Condition("z", "eq", "p,q"),
    ))
    [negated] = filters_of(("not.and", "(a.eq.1,b.eq.2)"))
    assert negated.negated and negated.operator == "and"


@pytest.mark.parametrize("key,value", [
    ("id", "5"), ("id", "equals.5"), ("id", "fts.word"), ("id", "in.1,2"), ("id", "is.maybe"), ("or", "a.eq.1"),
    ("or", "(a.eq.1"), ("or", "(a)"), ("or", "(,)"), ("author.name", "eq.x"), ("metadata->>a", "eq.1"),
])
def test_bad_filters(key: str, value: str) -> None:
    with pytest.raises(GrammarError):
        filters_of((key, value))


def test_filter_count_and_depth_are_bounded() -> None:
    with pytest.raises(GrammarError):
        filters_of(*[("id", "eq.1")] * 101)
    deep = "(" + "or(" * 10 + "a.eq.1" + ")" * 10 + ")"
    with pytest.raises(GrammarError):
        filters_of(("or", deep))


def test_order() -> None:
    assert parse_order("created_at.desc.nullslast,id") == [OrderItem("created_at", True, "last"),
                                                           OrderItem("id")]
    assert parse_order('"display name".asc.nullsfirst') == [OrderItem("display name", False, "first")]
    assert parse_order("id;drop") == [OrderItem("id;drop")]  # just a name: the catalog refuses it later
    for bad in ("id.sideways", "id.asc.desc", "id.nullslast.asc", "a(b)"):
        with pytest.raises(GrammarError):
            parse_order(bad)


def test_columns_and_splitting() -> None:
    assert parse_columns('"title","done"') == ["title", "done"]
    assert parse_columns("a,b") == ["a", "b"]
    assert split_top_level('a,"b,c",(d,e)') == ["a", '"b,c"', "(d,e)"]
    with pytest.raises(GrammarError):
        parse_columns("a,,b")


def test_postgres_errors_map_to_postgrest_statuses() -> None:
    assert _status_for("42501", "anon") == 401 and _status_for("42501", "authenticated") == 403
    assert {code: _status_for(code, "authenticated") for code in ("23505", "23503", "22P02", "23502", "23514",
                                                                   "P0001", "42P01", "42883", "42703", "08006")} == {
        "23505": 409, "23503": 409, "22P02": 400, "23502": 400, "23514": 400, "P0001": 400, "42P01": 404,
        "42883": 404, "42703": 400, "08006": 503}
