"""Composes the data API's SQL with psycopg's `sql` module: identifiers only from the catalog, always quoted with
`sql.Identifier`; every value a bound parameter cast to the catalog's column type. Nothing a client sends is ever
spliced into SQL text.

Each builder returns a `Statement` (a `sql.Composed` plus its positional parameters); the caller runs it inside
the request's unit of work, so RLS, grants and triggers decide what it may read or change.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from db.rest.catalog import EXPOSED_SCHEMA, Argument, Column, Function, Table
from db.rest.grammar import Condition, Filters, Logic, OrderItem, SelectItem

SOURCE = sql.Identifier("pgrst_source")
ROW = sql.Identifier("pgrst_row")
MAX_PARAMETERS = 60_000  # PostgreSQL's protocol allows 65535 per statement


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
    params: list[Any] = field(default_factory=list)

    def as_string(self, context=None) -> str:
        return self.query.as_string(context)


class Params:
    """Collects bound values in placeholder order."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def bind(self, value: Any) -> sql.Composable:
        if len(self.values) >= MAX_PARAMETERS:
            raise TooManyValues(f"a request binds at most {MAX_PARAMETERS} values")
        self.values.append(value)
        return sql.Placeholder()

    def cast(self, value: Any, column_type: str) -> sql.Composable:
        # column_type comes from format_type() in the catalog, never from the request
        return sql.SQL("CAST({} AS {})").format(self.bind(value), sql.SQL(column_type))


def table_ident(table: Table) -> sql.Identifier:
    return sql.Identifier(EXPOSED_SCHEMA, table.name)


def column_of(table: Table, name: str) -> Column:
    column = table.columns.get(name)
    if column is None:
        raise UnknownColumn(table.name, name)
    return column


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def write_value(params: Params, column_type: str, type_name: str, is_json: bool, is_array: bool,
                value: Any) -> sql.Composable:
    """A JSON value from a request body, as PostgREST's json_populate_record would convert it."""
    if value is None:
        return params.cast(None, column_type)
    if is_json:
        return params.cast(json_text(value), column_type)
    if is_array and isinstance(value, list):
        elements = sql.SQL("ARRAY(SELECT json_array_elements_text(CAST({} AS json)))").format(
            params.bind(json_text(value)))
        return sql.SQL("CAST({} AS {})").format(elements, sql.SQL(column_type))
    if isinstance(value, str):
        return params.cast(value, column_type)
    return params.cast(json_text(value), column_type)


def column_value(params: Params, column: Column, value: Any) -> sql.Composable:
    return write_value(params, column.type, column.type_name, column.is_json, column.is_array, value)


def argument_value(params: Params, argument: Argument, value: Any) -> sql.Composable:
    return write_value(params, argument.type, argument.type_name, argument.type_name in ("json", "jsonb"),
                       argument.type.endswith("[]"), value)


_COMPARISONS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
                "cs": "@>", "cd": "<@", "ov": "&&"}
_IS = {"null": "IS NULL", "not_null": "IS NOT NULL", "true": "IS TRUE", "false": "IS FALSE",
       "unknown": "IS UNKNOWN"}


def _condition_sql(table: Table, condition: Condition, params: Params) -> sql.Composable:
    column = column_of(table, condition.column)
    ident = sql.Identifier(column.name)
    op = condition.operator
    if op in _COMPARISONS:
        clause = sql.SQL("{} {} {}").format(ident, sql.SQL(_COMPARISONS[op]), params.cast(condition.value, column.type))
    elif op in ("like", "ilike"):
        target = ident if column.is_text else sql.SQL("CAST({} AS text)").format(ident)
        pattern = str(condition.value).replace("*", "%")
        clause = sql.SQL("{} {} {}").format(target, sql.SQL("LIKE" if op == "like" else "ILIKE"), params.bind(pattern))
    elif op == "is":
        clause = sql.SQL("{} {}").format(ident, sql.SQL(_IS[str(condition.value)]))
    elif op == "in":
        values = list(condition.value)
        if not values:
            clause = sql.SQL("false")
        else:
            clause = sql.SQL("{} IN ({})").format(
                ident, sql.SQL(", ").join(params.cast(v, column.type) for v in values))
    else:  # the grammar admits only the operators above
        raise ValueError(op)
    return sql.SQL("NOT ({})").format(clause) if condition.negated else clause


def _node_sql(table: Table, node: Condition | Logic, params: Params) -> sql.Composable:
    if isinstance(node, Condition):
        return _condition_sql(table, node, params)
    joiner = sql.SQL(" OR ") if node.operator == "or" else sql.SQL(" AND ")
    inner = joiner.join(sql.SQL("({})").format(_node_sql(table, child, params)) for child in node.children) \
        if node.children else sql.SQL("true" if node.operator == "and" else "false")
    return sql.SQL("NOT ({})" if node.negated else "({})").format(inner)


def where_sql(table: Table, filters: Filters, params: Params) -> sql.Composable:
    if not filters:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(
        sql.SQL("({})").format(_node_sql(table, node, params)) for node in filters.items)


def select_list_sql(table: Table, items: list[SelectItem], qualifier: sql.Identifier | None = None) -> sql.Composable:
    parts: list[sql.Composable] = []
    for item in items:
        names = list(table.columns) if item.column == "*" else [column_of(table, item.column).name]
        for name in names:
            ref = sql.Identifier(name) if qualifier is None else sql.SQL("{}.{}").format(qualifier,
                                                                                        sql.Identifier(name))
            parts.append(ref if item.alias is None else sql.SQL("{} AS {}").format(ref, sql.Identifier(item.alias)))
    return sql.SQL(", ").join(parts)


def order_sql(table: Table, items: list[OrderItem]) -> sql.Composable:
    if not items:
        return sql.SQL("")
    parts = []
    for item in items:
        column = column_of(table, item.column)
        part = sql.SQL("{} {}").format(sql.Identifier(column.name), sql.SQL("DESC" if item.descending else "ASC"))
        # On a NOT NULL column the nulls placement cannot change the result, and leaving it out lets
        # `created_at.desc.nullslast` (supabase-flutter's default) walk a plain `created_at desc` index.
        if item.nulls and not column.not_null:
            part = part + sql.SQL(" NULLS FIRST" if item.nulls == "first" else " NULLS LAST")
        parts.append(part)
    return sql.SQL(" ORDER BY ") + sql.SQL(", ").join(parts)


def _aggregate(select_list: sql.Composable, inner: sql.Composable) -> sql.Composable:
    """Rows → (row count, JSON array text) in one pass, serialised by PostgreSQL as PostgREST does."""
    return sql.SQL("SELECT pg_catalog.count({row}), coalesce(pg_catalog.json_agg({row}), '[]')::text "
                   "FROM (SELECT {cols} FROM {inner}) {row}").format(row=ROW, cols=select_list, inner=inner)


def read(table: Table, select: list[SelectItem], filters: Filters, order: list[OrderItem],
         limit: int, offset: int) -> Statement:
    params = Params()
    where = where_sql(table, filters, params)
    inner = sql.SQL("{table}{where}{order} LIMIT {limit} OFFSET {offset}").format(
        table=table_ident(table), where=where, order=order_sql(table, order),
        limit=params.bind(limit), offset=params.bind(offset))
    return Statement(_aggregate(select_list_sql(table, select), inner), params.values)


def count(table: Table, filters: Filters) -> Statement:
    params = Params()
    query = sql.SQL("SELECT pg_catalog.count(*) FROM {}{}").format(table_ident(table),
                                                                   where_sql(table, filters, params))
    return Statement(query, params.values)


def _returning(table: Table, statement: sql.Composable, select: list[SelectItem] | None) -> sql.Composable:
    """Wrap a write so it answers (affected rows, representation). Without `select` (return=minimal) the bare
    statement runs and its row count is used: no RETURNING, so no SELECT policy has to admit the new rows."""
    if select is None:
        return statement
    return sql.SQL("WITH {src} AS ({stmt} RETURNING {table}.*) {agg}").format(
        src=SOURCE, stmt=statement, table=table_ident(table),
        agg=_aggregate(select_list_sql(table, select), SOURCE))


def insert(table: Table, columns: list[str], rows: list[dict[str, Any]], *, missing_default: bool,
           on_conflict: list[str] | None, resolution: str | None,
           select: list[SelectItem] | None) -> Statement:
    """INSERT of JSON rows; `select=None` means `return=minimal` (no RETURNING, so no SELECT policy applies)."""
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
    statement = sql.SQL("INSERT INTO {table} ({cols}) VALUES {values}").format(
        table=table_ident(table), cols=sql.SQL(", ").join(sql.Identifier(c.name) for c in target), values=values)
    if resolution:
        conflict = [column_of(table, name).name for name in (on_conflict or table.primary_key)]
        updates = [c for c in target if c.name in columns]
        if resolution == "merge-duplicates" and updates:
            action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
                sql.SQL("{col} = EXCLUDED.{col}").format(col=sql.Identifier(c.name)) for c in updates)
        else:
            action = sql.SQL("DO NOTHING")
        statement = statement + sql.SQL(" ON CONFLICT ({}) ").format(
            sql.SQL(", ").join(sql.Identifier(name) for name in conflict)) + action
    return Statement(_returning(table, statement, select), params.values)


def update(table: Table, patch: dict[str, Any], filters: Filters, select: list[SelectItem] | None) -> Statement:
    params = Params()
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column.name), column_value(params, column, patch[name]))
        for name, column in ((name, column_of(table, name)) for name in patch))
    statement = sql.SQL("UPDATE {table} SET {assignments}{where}").format(
        table=table_ident(table), assignments=assignments, where=where_sql(table, filters, params))
    return Statement(_returning(table, statement, select), params.values)


def delete(table: Table, filters: Filters, select: list[SelectItem] | None) -> Statement:
    params = Params()
    statement = sql.SQL("DELETE FROM {table}{where}").format(table=table_ident(table),
                                                             where=where_sql(table, filters, params))
    return Statement(_returning(table, statement, select), params.values)


def call(function: Function, arguments: dict[str, Any]) -> Statement:
    """`SELECT` the function with named arguments; the result comes back as one JSON text (or nothing for void)."""
    params = Params()
    by_name = {arg.name: arg for arg in function.arguments}
    named = sql.SQL(", ").join(
        sql.SQL("{} => {}").format(sql.Identifier(name), argument_value(params, by_name[name], value))
        for name, value in arguments.items())
    invocation = sql.SQL("{}({})").format(sql.Identifier(EXPOSED_SCHEMA, function.name), named)
    if function.returns_void:
        query = sql.SQL("SELECT {}").format(invocation)
    elif function.returns_set and function.returns_composite:
        query = sql.SQL("SELECT coalesce(pg_catalog.json_agg({row}), '[]')::text FROM {fn} {row}").format(
            row=ROW, fn=invocation)
    elif function.returns_set:
        query = sql.SQL("SELECT coalesce(pg_catalog.json_agg({row}.v), '[]')::text FROM {fn} AS {row}(v)").format(
            row=ROW, fn=invocation)
    elif function.returns_composite:
        query = sql.SQL("SELECT pg_catalog.to_json({row})::text FROM {fn} {row}").format(row=ROW, fn=invocation)
    else:
        query = sql.SQL("SELECT pg_catalog.to_json({})::text").format(invocation)
    return Statement(query, params.values)
