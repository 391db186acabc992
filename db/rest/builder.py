"""Composes the data API's SQL with psycopg's `sql` module: identifiers only from the catalog, always quoted with
`sql.Identifier` (a `::cast` only as a type the catalog knows); every value a bound parameter. Nothing a client
sends is ever spliced into SQL text.

A read is one statement, shaped like PostgREST's: the root relation, each embedded resource in a
`LEFT|INNER JOIN LATERAL` subquery (an object via `row_to_json`, an array via `json_agg`), and an outer
aggregate that answers (total or NULL, page rows, body). Writes and calls with a representation run as a CTE
(`WITH pgrst_source AS (...)`) that the same read shapes. The caller runs each statement inside the request's
unit of work, so RLS, grants and triggers decide what it may read or change.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from psycopg import sql

from db.rest.catalog import Argument, Catalog, Column, Function, Table
from db.rest.errors import RequestError
from db.rest.grammar import Condition, Field, Filters, Logic, SelectField, parse_query
from db.rest.plan import Embed, Node, Planner, Source

SOURCE = "pgrst_source"
UPDATED_SETTING = "pgrst.updated"  # rows an upsert updated (transaction-local)
ROW = sql.Identifier("pgrst_row")
MAX_PARAMETERS = 60_000  # PostgreSQL's protocol allows 65535 per statement
Output = Literal["json", "csv"]


class UnknownColumn(LookupError):
    def __init__(self, table: str, column: str) -> None:
        super().__init__(column)
        self.table = table
        self.column = column


class TooManyValues(ValueError):
    pass


@dataclass
class Statement:
    query: sql.Composable
    params: dict[str, Any] = field(default_factory=dict)

    def as_string(self, context=None) -> str:
        return self.query.as_string(context)


class Params:
    """Collects bound values under generated names, so composition order never matters."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def bind(self, value: Any) -> sql.Composable:
        if len(self.values) >= MAX_PARAMETERS:
            raise TooManyValues(f"a request binds at most {MAX_PARAMETERS} values")
        name = f"p{len(self.values)}"
        self.values[name] = value
        return sql.Placeholder(name)

    def cast(self, value: Any, column_type: str) -> sql.Composable:
        # column_type comes from format_type() in the catalog, never from the request
        return sql.SQL("CAST({} AS {})").format(self.bind(value), sql.SQL(column_type))


def table_ident(table: Table) -> sql.Identifier:
    return sql.Identifier(table.schema, table.name)


def column_of(table: Table, name: str) -> Column:
    column = table.columns.get(name)
    if column is None:
        raise UnknownColumn(table.name, name)
    return column


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def write_value(params: Params, column_type: str, type_name: str, is_json: bool, is_array: bool,
                value: Any, *, is_composite: bool = False) -> sql.Composable:
    """A JSON value from a request body, as PostgREST's json_populate_record would convert it."""
    if value is None:
        return params.cast(None, column_type)
    if is_json:
        return params.cast(json_text(value), column_type)
    if is_composite and isinstance(value, dict):
        return sql.SQL("pg_catalog.json_populate_record(CAST(NULL AS {}), CAST({} AS json))").format(
            sql.SQL(column_type), params.bind(json_text(value)))
    if is_array and isinstance(value, list):
        elements = sql.SQL("ARRAY(SELECT pg_catalog.json_array_elements_text(CAST({} AS json)))").format(
            params.bind(json_text(value)))
        return sql.SQL("CAST({} AS {})").format(elements, sql.SQL(column_type))
    if isinstance(value, str):
        return params.cast(value, column_type)
    return params.cast(json_text(value), column_type)


def column_value(params: Params, column: Column, value: Any) -> sql.Composable:
    return write_value(params, column.type, column.type_name, column.is_json, column.is_array, value,
                       is_composite=column.is_composite)


def argument_value(params: Params, argument: Argument, value: Any) -> sql.Composable:
    return write_value(params, argument.type, argument.type_name, argument.type_name in ("json", "jsonb"),
                       argument.type.endswith("[]"), value, is_composite=bool(argument.row_table))


# --- fields, filters, order -------------------------------------------------------------------------------------

_COMPARISONS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE",
                "ilike": "ILIKE", "match": "~", "imatch": "~*", "cs": "@>", "cd": "<@", "ov": "&&", "sl": "<<",
                "sr": ">>", "nxr": "&<", "nxl": "&>", "adj": "-|-"}
_IS = {"null": "IS NULL", "not_null": "IS NOT NULL", "true": "IS TRUE", "false": "IS FALSE",
       "unknown": "IS UNKNOWN"}
_FTS = {"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery",
        "wfts": "websearch_to_tsquery"}


def array_literal(values: tuple[str, ...] | list[str]) -> str:
    """A PostgreSQL array literal with every element quoted (PostgREST's `pgBuildArrayLiteral`)."""
    def quote(value: str) -> str:
        return '"' + value.replace("\x00", "").replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "{" + ",".join(quote(v) for v in values) + "}"


class Composer:
    """Turns a planned read tree into SQL; one instance per statement (it owns the statement's parameters)."""

    def __init__(self, planner: Planner, params: Params | None = None) -> None:
        self.planner = planner
        self.catalog: Catalog = planner.catalog
        self.params = params or Params()

    # fields
    def field_sql(self, node: Node, fld: Field, *, in_order: bool = False) -> sql.Composable:
        self.planner.check_field(node, fld)
        alias = sql.Identifier(node.alias)
        if self.planner.is_computed(node, fld.name):
            source = node.source
            relation = sql.Identifier(source.schema, source.name)
            expr: sql.Composable = sql.SQL("{}(CAST({} AS {}))").format(
                sql.Identifier(source.schema, fld.name), alias, relation)
        else:
            expr = sql.SQL("{}.{}").format(alias, sql.Identifier(fld.name))
        for step in fld.json_path:
            arrow = sql.SQL(step.arrow)
            key = sql.Literal(step.key) if isinstance(step.key, int) else self.params.bind(step.key)
            expr = sql.SQL("{}{}{}").format(expr, arrow, key)
        return expr

    def cast_sql(self, cast: str) -> sql.Composable:
        sql_type = self.catalog.cast_type(cast)
        if sql_type is None:
            raise RequestError(400, "42704", f'type "{cast}" does not exist')
        return sql.SQL(sql_type)  # from the catalog's type names or the alias table, never the request

    def select_item_sql(self, node: Node, item: SelectField, *, hoisted: bool = False) -> sql.Composable:
        """One select item; `hoisted`: the level is a to-one spread, whose aggregates its parent applies (as
        PostgREST's `pgFmtSpreadSelectItem`), so here the field is selected plain."""
        if item.aggregate is not None:
            if item.field.name != "*":
                self.planner.check_field(node, item.field)
            if not self.planner.aggregates:
                raise RequestError(400, "PGRST123", "Use of aggregate functions is not allowed")
            if hoisted and item.field.name != "*":
                item = SelectField(item.field, item.cast, item.alias)
            elif not hoisted:
                return sql.SQL("{} AS {}").format(self.aggregate_sql(node, item),
                                                  sql.Identifier(item.output_name))
            else:
                return sql.SQL("1 AS {}").format(sql.Identifier(item.output_name))
        if item.is_star:
            return sql.SQL("{}.*").format(sql.Identifier(node.alias))
        if self.planner.is_legacy_count(node, item.field):
            # `rel(count)`: PostgreSQL reads `alias.count` as `count(alias)`, which PostgREST keeps as its
            # aggregate-free way to count rows (it works with aggregates off)
            expr: sql.Composable = sql.SQL("pg_catalog.count({})").format(sql.Identifier(node.alias))
            return sql.SQL("{} AS {}").format(expr, sql.Identifier(item.output_name))
        expr = self.field_sql(node, item.field)
        if item.cast:
            expr = sql.SQL("CAST({} AS {})").format(expr, self.cast_sql(item.cast))
        return sql.SQL("{} AS {}").format(expr, sql.Identifier(item.output_name))

    def aggregate_sql(self, node: Node, item: SelectField) -> sql.Composable:
        """`count()`, `col.sum()`, ... as PostgREST's `pgFmtApplyAggregate`: the function (from the grammar's
        fixed list) over the field and its cast, then the aggregate's own cast."""
        assert item.aggregate is not None
        if item.field.name == "*":
            operand: sql.Composable = sql.SQL("*")
        else:
            operand = self.field_sql(node, item.field)
            if item.cast:
                operand = sql.SQL("CAST({} AS {})").format(operand, self.cast_sql(item.cast))
        expr = sql.SQL("{}({})").format(sql.SQL(item.aggregate.upper()), operand)
        if item.aggregate_cast:
            expr = sql.SQL("CAST({} AS {})").format(expr, self.cast_sql(item.aggregate_cast))
        return expr

    @staticmethod
    def is_grouped(node: Node, *, hoisted: bool = False) -> bool:
        """Whether a level aggregates (its own select, or a to-one spread's aggregates it applies)."""
        return (not hoisted and any(item.aggregate is not None for item in node.select)) or any(
            embed.spread and embed.to_one and any(item.aggregate is not None for item in embed.node.select)
            for embed in node.embeds)

    def group_sql(self, node: Node, *, hoisted: bool = False) -> sql.Composable:
        """PostgREST's `groupF`: with an aggregate in a level's select, GROUP BY every other field it selects
        (embedded resources by their JSON value, spread fields by their lateral column). A `hoisted` level's
        aggregates are its parent's."""
        if not self.is_grouped(node, hoisted=hoisted):
            return sql.SQL("")
        terms: list[sql.Composable] = []
        alias = sql.Identifier(node.alias)
        for item in node.select:
            if item.is_star:  # PostgreSQL groups by columns, not by `alias.*`
                terms.extend(sql.SQL("{}.{}").format(alias, sql.Identifier(name)) for name in node.source.columns)
            elif item.aggregate is None:
                terms.append(sql.Identifier(item.output_name))
        for embed in node.embeds:
            if embed.spread:
                lateral = sql.Identifier(embed.lateral_alias)
                for name in self.spread_names(embed, plain_only=True):
                    names = list(embed.node.source.columns) if name == "*" else [name]
                    terms.extend(sql.SQL("{}.{}").format(lateral, sql.Identifier(n)) for n in names)
            elif not embed.empty:
                terms.append(sql.Identifier(embed.output_name))
        return sql.SQL(" GROUP BY ") + sql.SQL(", ").join(terms) if terms else sql.SQL("")

    # filters
    def condition_sql(self, node: Node, condition: Condition) -> sql.Composable:
        null_embed = self.planner.null_embed_filter(node, condition)
        if null_embed is not None:
            lateral = sql.Identifier(null_embed.embed.lateral_alias)
            if null_embed.embed.to_one:
                test = "IS DISTINCT FROM NULL" if null_embed.negated else "IS NOT DISTINCT FROM NULL"
                return sql.SQL("({} {})").format(lateral, sql.SQL(test))
            test = "IS NOT NULL" if null_embed.negated else "IS NULL"
            return sql.SQL("({}.{} {})").format(lateral, lateral, sql.SQL(test))
        fld = condition.field
        target = self.field_sql(node, fld)
        operation = condition.operation
        op = operation.operator
        plain_column = not fld.json_path and fld.name in node.source.columns
        column = node.source.columns.get(fld.name) if plain_column else None
        if op in _COMPARISONS:
            value = str(operation.value)
            if op in ("like", "ilike"):
                value = value.replace("*", "%")
                if column is not None and not column.is_text and not column.is_array:
                    target = sql.SQL("CAST({} AS text)").format(target)
            operand = self.params.bind(value)
            if operation.quantifier:
                operand = sql.SQL("{}({})").format(sql.SQL(operation.quantifier.upper()), operand)
            clause = sql.SQL("{} {} {}").format(target, sql.SQL(_COMPARISONS[op]), operand)
        elif op == "is":
            clause = sql.SQL("{} {}").format(target, sql.SQL(_IS[str(operation.value)]))
        elif op == "isdistinct":
            clause = sql.SQL("{} IS DISTINCT FROM {}").format(target, self.params.bind(str(operation.value)))
        elif op == "in":
            values = list(operation.value)
            if values == [""]:
                clause = sql.SQL("false")
            else:
                clause = sql.SQL("{} = ANY({})").format(target, self.params.bind(array_literal(values)))
        elif op in _FTS:
            query_fn = sql.SQL(_FTS[op])
            if operation.language:
                call = sql.SQL("{}({}, {})").format(query_fn, self.params.bind(operation.language),
                                                    self.params.bind(str(operation.value)))
            else:
                call = sql.SQL("{}({})").format(query_fn, self.params.bind(str(operation.value)))
            if column is not None and column.type_name != "tsvector":
                if operation.language:
                    target = sql.SQL("to_tsvector({}, {})").format(self.params.bind(operation.language), target)
                else:
                    target = sql.SQL("to_tsvector({})").format(target)
            clause = sql.SQL("{} @@ {}").format(target, call)
        else:  # the grammar admits only the operators above
            raise ValueError(op)
        return sql.SQL("NOT ({})").format(clause) if condition.negated else clause

    def tree_sql(self, node: Node, tree: Condition | Logic) -> sql.Composable:
        if isinstance(tree, Condition):
            return self.condition_sql(node, tree)
        joiner = sql.SQL(" OR ") if tree.operator == "or" else sql.SQL(" AND ")
        inner = joiner.join(sql.SQL("({})").format(self.tree_sql(node, child)) for child in tree.children)
        return sql.SQL("NOT ({})" if tree.negated else "({})").format(inner)

    # order
    def order_sql(self, node: Node) -> sql.Composable:
        if not node.order:
            return sql.SQL("")
        parts = []
        for item in node.order:
            if item.relation is not None:
                embed = self.planner.related_order(node, item)
                self.planner.check_field(embed.node, item.field)
                expr: sql.Composable = sql.SQL("{}.{}").format(sql.Identifier(embed.lateral_alias),
                                                              sql.Identifier(item.field.name))
                for step in item.field.json_path:
                    key = sql.Literal(step.key) if isinstance(step.key, int) else self.params.bind(step.key)
                    expr = sql.SQL("{}{}{}").format(expr, sql.SQL(step.arrow), key)
                column = None
            else:
                expr = self.field_sql(node, item.field)
                column = node.source.columns.get(item.field.name) if not item.field.json_path else None
            part = sql.SQL("{} {}").format(expr, sql.SQL("DESC" if item.descending else "ASC"))
            # On a NOT NULL column the nulls placement cannot change the result, and leaving it out lets
            # `created_at.desc.nullslast` (supabase-flutter's default) walk a plain `created_at desc` index.
            if item.nulls and not (column is not None and column.not_null):
                part = part + sql.SQL(" NULLS FIRST" if item.nulls == "first" else " NULLS LAST")
            parts.append(part)
        return sql.SQL(" ORDER BY ") + sql.SQL(", ").join(parts)

    # the read tree
    def node_sql(self, node: Node, *, parent: Node | None = None, embed: Embed | None = None,
                 from_sql: sql.Composable | None = None, ordered: bool = True, count_only: bool = False,
                 paged: bool = True) -> sql.Composable:
        alias = sql.Identifier(node.alias)
        selects: list[sql.Composable] = []
        hoisted = embed is not None and embed.spread and embed.to_one
        if not count_only:
            selects = [self.select_item_sql(node, item, hoisted=hoisted) for item in node.select]
            for child in node.embeds:
                selects.extend(self.embed_selects(child, grouped=self.is_grouped(node, hoisted=hoisted)))
            if not selects and not node.embeds:
                selects = [sql.SQL("{}.*").format(alias)]
        else:
            selects = [sql.SQL("1")]
        relation = node.source
        junction_sql = sql.SQL("")
        conditions: list[sql.Composable] = []
        if from_sql is not None:
            source_sql = from_sql
        elif embed is not None and embed.relationship.function is not None and parent is not None:
            assert parent.source.table is not None
            source_sql = sql.SQL("{}(CAST({} AS {}))").format(
                sql.Identifier(relation.schema, embed.relationship.function), sql.Identifier(parent.alias),
                sql.Identifier(parent.source.schema, parent.source.name))
        else:
            source_sql = sql.Identifier(relation.schema, relation.name)
        if embed is not None and parent is not None and embed.relationship.function is None:
            rel = embed.relationship
            parent_alias = sql.Identifier(parent.alias)
            if rel.junction is not None:
                junction_alias = sql.Identifier(f"{rel.junction.table}_junction_{node.depth}")
                junction_sql = sql.SQL(", {} AS {}").format(sql.Identifier(relation.schema, rel.junction.table),
                                                           junction_alias)
                for junction_column, foreign_column in rel.junction.target_columns:
                    conditions.append(sql.SQL("{}.{} = {}.{}").format(
                        junction_alias, sql.Identifier(junction_column), alias, sql.Identifier(foreign_column)))
                for junction_column, origin_column in rel.junction.source_columns:
                    conditions.append(sql.SQL("{}.{} = {}.{}").format(
                        junction_alias, sql.Identifier(junction_column), parent_alias,
                        sql.Identifier(origin_column)))
            else:
                for origin_column, foreign_column in rel.columns:
                    conditions.append(sql.SQL("{}.{} = {}.{}").format(
                        alias, sql.Identifier(foreign_column), parent_alias, sql.Identifier(origin_column)))
        joins = [self.embed_join(node, child) for child in node.embeds
                 if not count_only or child.inner or self._null_filtered(node, child)]
        where = [self.tree_sql(node, tree) for tree in node.filters] + conditions
        query = sql.SQL("SELECT {selects} FROM {source} AS {alias}{junction}{joins}{where}").format(
            selects=sql.SQL(", ").join(selects), source=source_sql, alias=alias, junction=junction_sql,
            joins=sql.SQL("").join(joins),
            where=(sql.SQL(" WHERE ") + sql.SQL(" AND ").join(sql.SQL("({})").format(w) for w in where))
            if where else sql.SQL(""))
        if not count_only:
            query = query + self.group_sql(node, hoisted=hoisted)
        if ordered and not count_only:
            query = query + self.order_sql(node)
        if paged and not count_only:
            if node.limit is not None:
                query = query + sql.SQL(" LIMIT {}").format(self.params.bind(node.limit))
            if node.offset:
                query = query + sql.SQL(" OFFSET {}").format(self.params.bind(node.offset))
        return query

    def _null_filtered(self, node: Node, child: Embed) -> bool:
        def mentions(tree: Condition | Logic) -> bool:
            if isinstance(tree, Condition):
                return not tree.field.json_path and tree.field.name not in node.source.columns \
                    and node.embed_named(tree.field.name) is child
            return any(mentions(c) for c in tree.children)
        return any(mentions(tree) for tree in node.filters)

    def embed_selects(self, embed: Embed, *, grouped: bool = False) -> list[sql.Composable]:
        """The parent's columns for one embed. PostgREST casts embedded JSON to jsonb; segbase does only where a
        GROUP BY needs jsonb's equality: the cast re-parses every embedded object and cost the 20-latest list
        with `projects(name)` about a quarter of its statement time (bench/rest_embed.py). Without it an
        embedded object keeps its select order of keys."""
        lateral = sql.Identifier(embed.lateral_alias)
        if embed.spread:
            hoisted = {item.output_name: item for item in embed.node.select if item.aggregate is not None} \
                if embed.to_one else {}
            selects = []
            for name in self.spread_names(embed):
                if name == "*":
                    selects.append(sql.SQL("{}.*").format(lateral))
                    continue
                column = sql.SQL("{}.{}").format(lateral, sql.Identifier(name))
                item = hoisted.get(name)
                if item is not None:  # the spread's aggregate, applied here over its plain field
                    assert item.aggregate is not None
                    column = sql.SQL("{}({})").format(sql.SQL(item.aggregate.upper()),
                                                      sql.SQL("*") if item.field.name == "*" else column)
                    if item.aggregate_cast:
                        column = sql.SQL("CAST({} AS {})").format(column, self.cast_sql(item.aggregate_cast))
                    column = sql.SQL("{} AS {}").format(column, sql.Identifier(name))
                selects.append(column)
            return selects
        if embed.empty:
            return []
        if embed.to_one:
            return [sql.SQL("row_to_json({}.*){} AS {}").format(lateral, sql.SQL("::jsonb" if grouped else ""),
                                                               sql.Identifier(embed.output_name))]
        return [sql.SQL("COALESCE({}.{}, '[]') AS {}").format(lateral, lateral, sql.Identifier(embed.output_name))]

    def spread_names(self, embed: Embed, *, plain_only: bool = False) -> list[str]:
        """The keys a spread lifts into its parent: the child's fields and its own embeds' keys (`plain_only`:
        without its aggregates, the keys a parent groups by)."""
        node = embed.node
        names: list[str] = []
        for item in node.select:
            if item.is_star and embed.to_one:
                names.append("*")
            elif item.is_star:
                names.extend(node.source.columns)
            elif not (plain_only and item.aggregate is not None):
                names.append(item.output_name)
        for child in node.embeds:
            if child.spread:
                names.extend(self.spread_names(child))
            elif not child.empty:
                names.append(child.output_name)
        if not names and not node.embeds:
            names = ["*"] if embed.to_one else list(node.source.columns)
        return names

    def embed_join(self, parent: Node, embed: Embed) -> sql.Composable:
        lateral = sql.Identifier(embed.lateral_alias)
        child_sql = self.node_sql(embed.node, parent=parent, embed=embed)
        kind = sql.SQL("INNER" if embed.inner else "LEFT")
        if embed.to_one:
            return sql.SQL(" {} JOIN LATERAL ({}) AS {} ON TRUE").format(kind, child_sql, lateral)
        cast = sql.SQL("::jsonb" if self.is_grouped(parent) else "")  # see embed_selects
        aggregated = [sql.SQL("pg_catalog.json_agg({}){} AS {}").format(lateral, cast, lateral)]
        if embed.spread:
            for name in self.spread_names(embed):
                aggregated.append(sql.SQL("COALESCE(pg_catalog.json_agg({}.{}), '[]'){} AS {}").format(
                    lateral, sql.Identifier(name), cast, sql.Identifier(name)))
        condition = sql.SQL("{}.{} IS NOT NULL").format(lateral, lateral) if embed.inner else sql.SQL("TRUE")
        return sql.SQL(" {} JOIN LATERAL (SELECT {} FROM ({}) AS {}) AS {} ON {}").format(
            kind, sql.SQL(", ").join(aggregated), child_sql, lateral, lateral, condition)


# --- statements -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """How the outer aggregate renders the rows: JSON (optionally nulls stripped) or CSV."""

    output: Output = "json"
    strip_nulls: bool = False
    scalar: bool = False  # rows are one-column `pgrst_scalar` values (a function returning a base type)
    single: bool = False  # the body is the first row, not an array (a function returning one row)


def _body(shape: Shape, source: sql.Composable) -> sql.Composable:
    if shape.output == "csv":
        header = sql.SQL("(SELECT coalesce(string_agg(k, ','), '') FROM (SELECT pg_catalog.json_object_keys(r) AS k "
                         "FROM (SELECT row_to_json(h) AS r FROM {} AS h LIMIT 1) first_row) keys)").format(source)
        rows = sql.SQL("coalesce(string_agg(substring({row}::text, 2, length({row}::text) - 2), E'\\n'), '')")
        return sql.SQL("{} || E'\\n' || {}").format(header, rows.format(row=ROW))
    value = sql.SQL("{}.pgrst_scalar").format(ROW) if shape.scalar else ROW
    aggregated = sql.SQL("pg_catalog.json_agg({})").format(value)
    if shape.single:
        aggregated = sql.SQL("({})->0").format(aggregated)
    if shape.strip_nulls:
        aggregated = sql.SQL("pg_catalog.json_strip_nulls({})").format(aggregated)
    return sql.SQL("coalesce({}, {})::text").format(aggregated, sql.Literal("null" if shape.single else "[]"))


def _wrap(page: sql.Composable, count: sql.Composable | None, shape: Shape,
          source_for_csv: sql.Composable) -> sql.Composable:
    """(total or NULL, page rows, body) over the page query."""
    total = sql.SQL("(SELECT pg_catalog.count(*) FROM ({}) pgrst_count)").format(count) \
        if count is not None else sql.SQL("NULL::bigint")
    return sql.SQL("SELECT {total}, pg_catalog.count({row}), {body} FROM ({page}) {row}").format(
        total=total, row=ROW, body=_body(shape, source_for_csv), page=page)


def read(planner: Planner, root: Node, *, count: bool, shape: Shape = Shape()) -> Statement:
    """The whole read in one statement: (total or NULL, rows in the page, body)."""
    composer = Composer(planner)
    page = composer.node_sql(root)
    count_sql = composer.node_sql(root, count_only=True) if count else None
    query = _wrap(page, count_sql, shape, sql.SQL("({})").format(page))
    return Statement(query, composer.params.values)


def count_estimate(planner: Planner, root: Node) -> Statement:
    """`EXPLAIN` of the read's count: the planner's row estimate answers `Prefer: count=planned`."""
    composer = Composer(planner)
    return Statement(sql.SQL("EXPLAIN (FORMAT JSON) ") + composer.node_sql(root, count_only=True),
                     composer.params.values)


def _representation(planner: Planner, root: Node, write: sql.Composable, params: Params,
                    shape: Shape) -> sql.Composable:
    composer = Composer(planner, params)
    source = sql.Identifier(SOURCE)
    page = composer.node_sql(root, from_sql=source)
    return sql.SQL("WITH {source} AS ({write}) ").format(source=source, write=write) + \
        _wrap(page, None, shape, source)


def _where(composer: Composer, root: Node, filters: Filters) -> sql.Composable:
    if not filters:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(
        sql.SQL("({})").format(composer.tree_sql(root, tree)) for tree in filters.items)


def insert(planner: Planner, table: Table, columns: list[str], rows: list[dict[str, Any]], *,
           missing_default: bool, on_conflict: list[str] | None, resolution: str | None,
           representation: Node | None, shape: Shape = Shape()) -> Statement:
    """INSERT of JSON rows; without a representation (return=minimal) there is no RETURNING, so no SELECT
    policy has to admit the new rows."""
    params = Params()
    target = [column_of(table, name) for name in columns]
    if not target:  # `{}` rows: every column takes its default
        target = [next(iter(table.columns.values()))]
        values = sql.SQL(", ").join(sql.SQL("(DEFAULT)") for _ in rows)
    else:
        values = sql.SQL(", ").join(
            sql.SQL("({})").format(sql.SQL(", ").join(
                column_value(params, column, row[column.name]) if column.name in row
                else (sql.SQL("DEFAULT") if missing_default else params.cast(None, column.type))
                for column in target))
            for row in rows)
    statement = sql.SQL("INSERT INTO {table} AS {alias} ({cols}) VALUES {values}").format(
        table=table_ident(table), alias=sql.Identifier(table.name),
        cols=sql.SQL(", ").join(sql.Identifier(c.name) for c in target), values=values)
    if resolution:
        conflict = [column_of(table, name).name for name in (on_conflict or table.primary_key)]
        updates = [c for c in target if c.name in columns]
        if resolution == "merge-duplicates" and updates:
            # the WHERE never refuses a row: it counts the rows the upsert updated instead of inserting, so the
            # answer can be 200 when nothing was inserted, as PostgREST's
            action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
                sql.SQL("{col} = EXCLUDED.{col}").format(col=sql.Identifier(c.name)) for c in updates) + \
                sql.SQL(" WHERE set_config({name}, (coalesce(nullif(current_setting({name}, true), '')::int, 0) + 1)"
                        "::text, true) <> '-1'").format(name=sql.Literal(UPDATED_SETTING))
        else:
            action = sql.SQL("DO NOTHING")
        statement = statement + sql.SQL(" ON CONFLICT ({}) ").format(
            sql.SQL(", ").join(sql.Identifier(name) for name in conflict)) + action
    return _write(planner, table, statement, params, representation, shape)


def _write(planner: Planner, table: Table, statement: sql.Composable, params: Params,
           representation: Node | None, shape: Shape) -> Statement:
    if representation is None:
        return Statement(statement, params.values)
    returning = statement + sql.SQL(" RETURNING {}.*").format(sql.Identifier(table.name))
    return Statement(_representation(planner, representation, returning, params, shape), params.values)


def update(planner: Planner, table: Table, patch: dict[str, Any], root: Node, filters: Filters,
           representation: Node | None, shape: Shape = Shape()) -> Statement:
    composer = Composer(planner)
    params = composer.params
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column.name), column_value(params, column, patch[name]))
        for name, column in ((name, column_of(table, name)) for name in patch))
    statement = sql.SQL("UPDATE {table} AS {alias} SET {assignments}{where}").format(
        table=table_ident(table), alias=sql.Identifier(table.name), assignments=assignments,
        where=_where(composer, root, filters))
    return _write(planner, table, statement, params, representation, shape)


def delete(planner: Planner, table: Table, root: Node, filters: Filters, representation: Node | None,
           shape: Shape = Shape()) -> Statement:
    composer = Composer(planner)
    statement = sql.SQL("DELETE FROM {table} AS {alias}{where}").format(
        table=table_ident(table), alias=sql.Identifier(table.name), where=_where(composer, root, filters))
    return _write(planner, table, statement, composer.params, representation, shape)


def check_filters(planner: Planner, root: Node, filters: Filters) -> None:
    """Validate filters without running anything (a PATCH with an empty body still names its columns)."""
    _where(Composer(planner), root, filters)


def call_arguments(params: Params, function: Function, arguments: dict[str, Any], *,
                   positional_value: Any = None) -> sql.Composable:
    """`name => value, ...` for the arguments given, or the whole body as the one unnamed argument."""
    if positional_value is not None:
        return params.cast(positional_value, function.arguments[0].type)
    by_name = {arg.name: arg for arg in function.arguments}
    return sql.SQL(", ").join(
        sql.SQL("{}{} => {}").format(sql.SQL("VARIADIC ") if by_name[name].is_variadic else sql.SQL(""),
                                     sql.Identifier(name), argument_value(params, by_name[name], value))
        for name, value in arguments.items())


def call(planner: Planner, function: Function, arguments: dict[str, Any], root: Node | None, *,
         count: bool, shape: Shape, positional_value: Any = None) -> Statement:
    """Call a function; its result goes through the read tree `root` (select, filters, order, range, embeds)
    when it returns rows, else it is one scalar (or a set of scalars)."""
    params = Params()
    invocation = sql.SQL("{}({})").format(
        sql.Identifier(function.schema, function.name),
        call_arguments(params, function, arguments, positional_value=positional_value))
    if function.returns_void:
        return Statement(sql.SQL("SELECT NULL::bigint, 0, {}").format(invocation), params.values)
    source = sql.Identifier(SOURCE)
    if root is None:  # a base type: one value, or a set of values
        if function.returns_set:
            produced = sql.SQL("SELECT pgrst_call AS pgrst_scalar FROM {} AS pgrst_call").format(invocation)
        else:
            produced = sql.SQL("SELECT {} AS pgrst_scalar").format(invocation)
        page = sql.SQL("SELECT * FROM {}").format(source)
        shaped = Shape(shape.output, shape.strip_nulls, scalar=True, single=not function.returns_set)
        total = sql.SQL("SELECT 1 FROM {}").format(source) if count else None
        query = sql.SQL("WITH {} AS ({}) ").format(source, produced) + _wrap(page, total, shaped, source)
        return Statement(query, params.values)
    produced = sql.SQL("SELECT pgrst_call.* FROM {} AS pgrst_call").format(invocation)
    composer = Composer(planner, params)
    page = composer.node_sql(root, from_sql=source)
    total = composer.node_sql(root, from_sql=source, count_only=True) if count else None
    shaped = Shape(shape.output, shape.strip_nulls, single=not function.returns_set)
    query = sql.SQL("WITH {} AS ({}) ").format(source, produced) + _wrap(page, total, shaped, source)
    return Statement(query, params.values)


def read_query(catalog: Catalog, name: str, params: list[tuple[str, str]], *, schema: str | None = None,
               max_rows: int | None = None, count: bool = False) -> Statement:
    """The statement `/rest/v1/<name>?<params>` runs (for benchmarks and plan tests: no HTTP in between)."""
    schema = schema or catalog.schemas[0]
    table = catalog.table(name, schema)
    if table is None:
        raise RequestError(404, "PGRST205", f"Could not find the table '{schema}.{name}' in the schema cache")
    query = parse_query(params, select=dict(params).get("select"))
    planner = Planner(catalog, schema, max_rows)
    return read(planner, planner.plan(Source.of(table), query), count=count)
