"""Pure logic without a database: the URL grammar parser and the PostgreSQL → HTTP error mapping."""
from __future__ import annotations

import pytest

from api.rest.errors import _status_for
from db.rest.grammar import (
    Condition,
    Field,
    Filters,
    GrammarError,
    JsonStep,
    Logic,
    Operation,
    OrderItem,
    SelectField,
    SelectRelation,
    parse_columns,
    parse_filter,
    parse_in_list,
    parse_non_negative,
    parse_order,
    parse_query,
    parse_select,
)


def col(name: str, *path: tuple[str, str | int]) -> Field:
    return Field(name, tuple(JsonStep(arrow, key) for arrow, key in path))


def cond(name: str, operator: str, value, negated: bool = False, **kw) -> Condition:
    return Condition(Field(name), Operation(operator, value, **kw), negated)


def test_select_lists() -> None:
    star = SelectField(Field("*"))
    assert parse_select(None) == [star]
    assert parse_select("*") == [star]
    assert parse_select(" id , name ") == [SelectField(Field("id")), SelectField(Field("name"))]
    assert parse_select('total:credits,"display name"') == [SelectField(Field("credits"), alias="total"),
                                                            SelectField(Field("display name"))]


def test_select_json_paths_casts_and_aggregates() -> None:
    assert parse_select("metadata->labels,data->a->>b::text,m:data->0") == [
        SelectField(col("metadata", ("->", "labels"))),
        SelectField(col("data", ("->", "a"), ("->>", "b")), cast="text"),
        SelectField(col("data", ("->", 0)), alias="m"),
    ]
    assert parse_select("data->-1")[0].field == col("data", ("->", -1))
    assert parse_select("data->a")[0].output_name == "a" and parse_select("id::text")[0].output_name == "id"
    assert parse_select("c:count(),id.sum()::int") == [
        SelectField(Field("*"), alias="c", aggregate="count"),
        SelectField(Field("id"), aggregate="sum", aggregate_cast="int"),
    ]


def test_select_embedding_forms() -> None:
    assert parse_select("*,projects(name)") == [SelectField(Field("*")),
                                                SelectRelation("projects", children=(SelectField(Field("name")),))]
    [embed] = parse_select("p:projects!segmentation_results_project_id_fkey!inner(*)")
    assert (embed.alias, embed.name, embed.hint, embed.join) == ("p", "projects",
                                                                "segmentation_results_project_id_fkey", "inner")
    [embed] = parse_select("projects!left!project_id(id)")
    assert (embed.hint, embed.join) == ("project_id", "left")
    [spread] = parse_select("...projects(project_name:name)")
    assert spread.spread and spread.children == (SelectField(Field("name"), alias="project_name"),)
    [empty] = parse_select("projects()")
    assert empty.children == ()
    [nested] = parse_select("users(messages(channels(slug)))")
    assert nested.children[0].children[0].children == (SelectField(Field("slug")),)
    [legacy_count] = parse_select("messages(count)")
    assert legacy_count.children == (SelectField(Field("count")),)


@pytest.mark.parametrize("text", ["id,,name", 'a"b', "alias:...rel(*)", "rel->path(*)", "id,(select 1)", "a b c(",
                                  "*,", "count(x)", "name!hint", "x(" * 20 + ")" * 20])
def test_select_outside_the_grammar(text: str) -> None:
    with pytest.raises(GrammarError) as raised:
        parse_select(text)
    assert raised.value.message


def filters_of(*pairs: tuple[str, str]) -> list:
    filters = Filters()
    for key, value in pairs:
        parse_filter(filters, key, value)
    return filters.items


def test_top_level_values_are_taken_literally() -> None:
    assert filters_of(("name", 'eq."quoted"')) == [cond("name", "eq", '"quoted"')]
    assert filters_of(("name", "eq.a,b)")) == [cond("name", "eq", "a,b)")]


def test_operators_and_negation() -> None:
    assert filters_of(("id", "eq.5")) == [cond("id", "eq", "5")]
    assert filters_of(("id", "not.gte.5")) == [cond("id", "gte", "5", True)]
    assert filters_of(("name", "like.*a%")) == [cond("name", "like", "*a%")]
    assert filters_of(("name", "is.NULL")) == [cond("name", "is", "null")]
    assert filters_of(("name", "not.is.null")) == [cond("name", "is", "null", True)]
    assert filters_of(("name", "isdistinct.x")) == [cond("name", "isdistinct", "x")]
    assert filters_of(("name", "like(any).{a*,b*}")) == [cond("name", "like", "{a*,b*}", quantifier="any")]
    assert filters_of(("name", "ilike(all).{%a%,%b%}")) == [cond("name", "ilike", "{%a%,%b%}", quantifier="all")]
    assert filters_of(("name", "match.^a")) == [cond("name", "match", "^a")]
    assert filters_of(("name", "imatch.^A")) == [cond("name", "imatch", "^A")]
    for op in ("sl", "sr", "nxl", "nxr", "adj", "ov", "cs", "cd"):
        assert filters_of(("r", f"{op}.[1,2)")) == [cond("r", op, "[1,2)")]
    assert filters_of(("t", "fts(french).chat")) == [cond("t", "fts", "chat", language="french")]
    assert filters_of(("t", "not.wfts.a or b")) == [cond("t", "wfts", "a or b", True)]
    assert filters_of(("t", "plfts.x"))[0].operator == "plfts" and filters_of(("t", "phfts.x"))[0].operator == "phfts"


def test_filter_keys_take_json_paths_and_embed_paths() -> None:
    assert filters_of(("metadata->>model", "eq.sam")) == [Condition(col("metadata", ("->>", "model")),
                                                                     Operation("eq", "sam"))]
    filters = Filters()
    parse_filter(filters, "projects.name", "eq.x")
    parse_filter(filters, "a.b.or", "(x.eq.1,y.eq.2)")
    assert filters.items == []
    assert filters.embedded == {("projects",): [cond("name", "eq", "x")],
                                ("a", "b"): [Logic("or", (cond("x", "eq", "1"), cond("y", "eq", "2")))]}


def test_in_lists_accept_every_client_quoting() -> None:
    # supabase-py: quotes elements with reserved characters; js: wraps without escaping; Dart: quotes everything
    assert filters_of(("id", 'in.(1,2,"a,b")'))[0].value == ("1", "2", "a,b")
    assert filters_of(("id", 'in.("a","b \\"c\\"")'))[0].value == ("a", 'b "c"')
    assert filters_of(("id", "in.()"))[0].value == ("",)  # PostgREST's empty list: matches nothing
    assert filters_of(("id", "not.in.(x)")) == [cond("id", "in", ("x",), True)]
    assert parse_in_list('(1,"a,b")') == ["1", "a,b"] and parse_in_list("()") == []


def test_logic_trees() -> None:
    [tree] = filters_of(("or", '(name.eq.a,and(id.gt.1,id.lt.9),not.or(x.is.null,y.in.(1,2)),z.eq."p,q")'))
    assert tree == Logic("or", (
        cond("name", "eq", "a"),
        Logic("and", (cond("id", "gt", "1"), cond("id", "lt", "9"))),
        Logic("or", (cond("x", "is", "null"), cond("y", "in", ("1", "2"))), True),
        cond("z", "eq", "p,q"),
    ))
    [negated] = filters_of(("not.and", "(a.eq.1,b.eq.2)"))
    assert negated.negated and negated.operator == "and"


def test_array_literals_inside_logic_trees_keep_their_commas() -> None:
    [tree] = filters_of(("or", "(tags.cs.{a,b},tags.cd.{c},data->>k.eq.v)"))
    assert tree.children == (cond("tags", "cs", "{a,b}"), cond("tags", "cd", "{c}"),
                             Condition(col("data", ("->>", "k")), Operation("eq", "v")))


@pytest.mark.parametrize("key,value", [
    ("id", "5"), ("id", "equals.5"), ("id", "in.1,2"), ("id", "is.maybe"), ("or", "a.eq.1"),
    ("or", "(a.eq.1"), ("or", "(a)"), ("or", "(,)"), ("id;drop", "eq.1"), ("id", "fts(x"),
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
    assert parse_order("created_at.desc.nullslast,id") == [OrderItem(Field("created_at"), True, "last"),
                                                           OrderItem(Field("id"))]
    assert parse_order('"display name".asc.nullsfirst') == [OrderItem(Field("display name"), False, "first")]
    assert parse_order("data->>k.desc,projects(name).asc") == [
        OrderItem(col("data", ("->>", "k")), True), OrderItem(Field("name"), False, None, "projects")]
    for bad in ("id.sideways", "id.asc.desc", "id.nullslast.asc", "id;drop", "(select 1)"):
        with pytest.raises(GrammarError):
            parse_order(bad)


def test_query_splits_parameters_by_embed_level() -> None:
    query = parse_query([("select", "*,projects(*)"), ("order", "id"), ("projects.order", "name.desc"),
                         ("projects.limit", "2"), ("projects.offset", "1"), ("limit", "5"), ("id", "eq.1"),
                         ("projects.name", "eq.x"), ("apikey", "k")], select="*,projects(*)")
    assert query.order == {(): [OrderItem(Field("id"))], ("projects",): [OrderItem(Field("name"), True)]}
    assert query.limits == {(): 5, ("projects",): 2} and query.offsets == {("projects",): 1}
    assert query.filters.items == [cond("id", "eq", "1")]
    assert query.filters.embedded == {("projects",): [cond("name", "eq", "x")]}


@pytest.mark.parametrize("value", ["²", "①", "1²", "٣", "-1", "1e3", " 1"])
def test_limit_and_offset_take_ascii_digits_only(value: str) -> None:
    with pytest.raises(GrammarError):
        parse_non_negative("limit", value)
    with pytest.raises(GrammarError):
        parse_query([("offset", value)], select=None)


def test_columns() -> None:
    assert parse_columns('"title","done"') == ["title", "done"]
    assert parse_columns("a,b") == ["a", "b"]
    with pytest.raises(GrammarError):
        parse_columns("a,,b")


def test_postgres_errors_map_to_postgrest_statuses() -> None:
    assert _status_for("42501", "anon") == 401 and _status_for("42501", "authenticated") == 403
    assert {code: _status_for(code, "authenticated") for code in ("23505", "23503", "22P02", "23502", "23514",
                                                                   "P0001", "42P01", "42883", "42703", "08006")} == {
        "23505": 409, "23503": 409, "22P02": 400, "23502": 400, "23514": 400, "P0001": 400, "42P01": 404,
        "42883": 404, "42703": 400, "08006": 503}
