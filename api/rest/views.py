"""The /rest/v1 routes: tables (read, insert, update, delete) and functions (`/rpc/<name>`).

Each view parses the request (api/rest/request.py), looks names up in the schema cache, lets db/rest/builder.py
compose the SQL, runs it in one unit of work as the caller, and shapes the answer (api/rest/response.py).
"""
from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Callable
from typing import Any

import psycopg
from flask import Blueprint, Response, request
from sqlalchemy.exc import DBAPIError, OperationalError

from api.identity import TokenError, credentials_from_request, resolve_caller
from api.rest.errors import PostgrestError, bad_request, database_error, token_error
from api.rest.request import (
    Preferences,
    check_profile,
    parse,
    parse_filters,
    parse_range_header,
    parse_representation,
    preferences,
    read_body,
    wants_object,
)
from api.rest.response import (
    SINGULAR_TYPE,
    json_response,
    read_response,
    singular,
    write_response,
)
from api.services import services
from db.rest import builder, grammar
from db.rest.builder import Statement, TooManyValues, UnknownColumn
from db.rest.cache import CatalogCache
from db.rest.catalog import EXPOSED_SCHEMA, Catalog, Function, Table
from db.rest.execute import fetch_one, row_count
from db.uow import Caller, UnitOfWork, unit_of_work

bp = Blueprint("rest", __name__)


# --- request plumbing ------------------------------------------------------------------------------------------

def catalog_cache() -> CatalogCache:
    return services().rest_catalog


def current_caller() -> Caller:
    apikey, bearer = credentials_from_request(request)
    svc = services()
    try:
        return resolve_caller(apikey=apikey, bearer=bearer, settings=svc.settings, engine=svc.engine)
    except TokenError as exc:
        raise token_error(exc) from exc


def in_transaction(caller: Caller, work: Callable[[UnitOfWork], Response]) -> Response:
    """Run `work` as one transaction as `caller`; an exception (a PostgREST error included) rolls it back."""
    try:
        with unit_of_work(services().engine, caller) as uow:
            return work(uow)
    except psycopg.Error as exc:
        raise _db_error(exc, caller) from exc
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.Error):
            raise _db_error(exc.orig, caller) from exc
        raise


def _db_error(exc: psycopg.Error, caller: Caller) -> PostgrestError:
    if exc.sqlstate is None:
        if isinstance(exc, psycopg.DataError):  # refused client-side, e.g. a NUL character in a value
            return PostgrestError(400, "22021", str(exc))
        return PostgrestError(503, "PGRST001", "Database client error. Retrying the connection.")
    return database_error(exc, caller.role)


def database_unavailable_is_503(view: Callable[..., Response]) -> Callable[..., Response]:
    """Losing the database (schema-cache load, session check, pool checkout) is PostgREST's 503, which the clients
    retry for GET/HEAD — never a 500."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except (psycopg.OperationalError, OperationalError) as exc:
            raise PostgrestError(503, "PGRST001", "Database client error. Retrying the connection.",
                                 details=str(exc).splitlines()[0][:200]) from exc
    return wrapper


# --- names from the schema cache -------------------------------------------------------------------------------

def lookup_table(cache: CatalogCache, name: str) -> Table:
    table = cache.get().table(name)
    if table is None and cache.reload_after_miss():
        table = cache.get().table(name)
    if table is None:
        close = difflib.get_close_matches(name, list(cache.get().tables), n=1)
        raise PostgrestError(404, "PGRST205", f"Could not find the table '{EXPOSED_SCHEMA}.{name}' in the schema cache",
                             hint=f"Perhaps you meant the table '{EXPOSED_SCHEMA}.{close[0]}'" if close else None)
    return table


def build(cache: CatalogCache, table_name: str, make: Callable[[Table], Statement], *,
          write_columns: bool = False) -> Statement:
    """Compose a statement; a column the cache does not know triggers one reload before it is an error."""
    for attempt in (1, 2):
        table = lookup_table(cache, table_name)
        try:
            return make(table)
        except UnknownColumn as exc:
            if attempt == 1 and cache.reload_after_miss():
                continue
            if write_columns:
                raise PostgrestError(400, "PGRST204", f"Could not find the '{exc.column}' column of "
                                     f"'{exc.table}' in the schema cache") from exc
            raise PostgrestError(400, "42703", f"column {exc.table}.{exc.column} does not exist") from exc
        except TooManyValues as exc:
            raise PostgrestError(413, "PGRST413", str(exc)) from exc
    raise AssertionError("unreachable")


# --- tables ----------------------------------------------------------------------------------------------------

@bp.route("/<name>", methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"])
@database_unavailable_is_503
def table_endpoint(name: str) -> Response:
    check_profile()
    caller = current_caller()
    cache = catalog_cache()
    lookup_table(cache, name)
    if request.method in ("GET", "HEAD"):
        return read(cache, name, caller)
    if request.method == "POST":
        return create(cache, name, caller)
    if request.method == "PUT":
        raise PostgrestError(405, "PGRST117", "PUT is not supported",
                             hint="upsert with POST and Prefer: resolution=merge-duplicates")
    return modify(cache, name, caller)


def read(cache: CatalogCache, name: str, caller: Caller) -> Response:
    settings = services().settings
    select = parse(lambda: grammar.parse_select(request.args.get("select")))
    order = parse(lambda: grammar.parse_order(request.args.get("order")))
    limit = parse(lambda: grammar.parse_non_negative("limit", request.args.get("limit")))
    offset = parse(lambda: grammar.parse_non_negative("offset", request.args.get("offset")))
    range_offset, range_limit = parse_range_header(request.headers.get("Range"))
    offset = offset if offset is not None else range_offset
    limit = min(x for x in (limit, range_limit, settings.rest_max_rows) if x is not None)
    filters = parse_filters()
    prefs = preferences()
    as_object = wants_object()
    statement = build(cache, name, lambda t: builder.read(t, select, filters, order, limit, offset))
    count_statement = build(cache, name, lambda t: builder.count(t, filters)) if prefs.wants_count else None

    def work(uow: UnitOfWork) -> Response:
        rows, body = fetch_one(uow, statement)
        total = fetch_one(uow, count_statement)[0] if count_statement is not None else None
        return read_response(body, rows, offset=offset, total=total, prefs=prefs, as_object=as_object)

    return in_transaction(caller, work)


def insert_columns(rows: list[dict[str, Any]], missing_default: bool) -> list[str]:
    if "columns" in request.args:
        return parse(lambda: grammar.parse_columns(request.args["columns"]))
    columns = list(rows[0])
    if missing_default:
        for row in rows[1:]:
            columns.extend(key for key in row if key not in columns)
    elif any(set(row) != set(columns) for row in rows[1:]):
        raise PostgrestError(400, "PGRST102", "All object keys must match")
    return columns


def create(cache: CatalogCache, name: str, caller: Caller) -> Response:
    prefs = preferences()
    body = read_body()
    rows = [body] if isinstance(body, dict) else body
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise PostgrestError(400, "PGRST102", "Empty or invalid json",
                             details="expected a JSON object or an array of objects")
    select = parse_representation(prefs)
    as_object = wants_object()
    if not rows:
        return write_response(prefs, 0, "[]" if select is not None else None, created=True, as_object=as_object)
    columns = insert_columns(rows, prefs.missing_default)
    resolution = prefs.resolution
    on_conflict = parse(lambda: grammar.parse_columns(request.args["on_conflict"])) \
        if resolution and "on_conflict" in request.args else None

    def make(table: Table) -> Statement:
        if resolution and not on_conflict and not table.primary_key:
            raise bad_request(f"on_conflict is required: '{table.name}' has no primary key")
        return builder.insert(table, columns, rows, missing_default=prefs.missing_default, on_conflict=on_conflict,
                              resolution=resolution, select=select)

    statement = build(cache, name, make, write_columns=True)
    return in_transaction(caller, lambda uow: run_write(uow, statement, prefs, select, created=True,
                                                        as_object=as_object))


def run_write(uow: UnitOfWork, statement: Statement, prefs: Preferences,
              select: list[grammar.SelectItem] | None, *, created: bool, as_object: bool) -> Response:
    if select is None:
        return write_response(prefs, row_count(uow, statement), None, created=created, as_object=as_object)
    rows, body = fetch_one(uow, statement)
    return write_response(prefs, rows, body, created=created, as_object=as_object)


def modify(cache: CatalogCache, name: str, caller: Caller) -> Response:
    prefs = preferences()
    for key in ("limit", "offset", "order"):
        if key in request.args:
            raise bad_request(f"`{key}` is not supported on {request.method}")
    filters = parse_filters()
    verb = "UPDATE" if request.method == "PATCH" else "DELETE"
    if not filters:
        raise PostgrestError(400, "21000", f"{verb} requires a WHERE clause",
                             hint="add a filter such as ?id=eq.<id>; unfiltered PATCH and DELETE are refused")
    select = parse_representation(prefs)
    as_object = wants_object()
    if request.method == "PATCH":
        patch = read_body()
        if not isinstance(patch, dict):
            raise PostgrestError(400, "PGRST102", "Empty or invalid json", details="expected a JSON object")
        if not patch:
            build(cache, name, lambda t: builder.count(t, filters))  # still validates the filters
            return write_response(prefs, 0, "[]" if select is not None else None, created=False,
                                  as_object=as_object)
        statement = build(cache, name, lambda t: builder.update(t, patch, filters, select), write_columns=True)
    else:
        statement = build(cache, name, lambda t: builder.delete(t, filters, select))
    return in_transaction(caller, lambda uow: run_write(uow, statement, prefs, select, created=False,
                                                        as_object=as_object))


# --- functions -------------------------------------------------------------------------------------------------

def lookup_function(catalog: Catalog, name: str, arguments: dict[str, Any]) -> Function | None:
    given = set(arguments)
    matches = [f for f in catalog.functions.get(name, [])
               if f.required <= given <= {arg.name for arg in f.arguments}]
    if len(matches) > 1:
        raise PostgrestError(300, "PGRST203", f"Could not choose the best candidate function between: "
                             f"{', '.join(f.signature for f in matches)}")
    return matches[0] if matches else None


@bp.route("/rpc/<name>", methods=["GET", "HEAD", "POST"])
@database_unavailable_is_503
def rpc_endpoint(name: str) -> Response:
    check_profile()
    caller = current_caller()
    cache = catalog_cache()
    if request.method == "POST":
        body = read_body()
        arguments = {} if body is None else body
        if not isinstance(arguments, dict):
            raise PostgrestError(400, "PGRST102", "Empty or invalid json",
                                 details="expected a JSON object of named arguments")
    else:
        arguments = {k: v for k, v in request.args.items() if k != "apikey"}
        if arguments.get("select") == "*":
            del arguments["select"]
    function = lookup_function(cache.get(), name, arguments)
    if function is None and cache.reload_after_miss():
        function = lookup_function(cache.get(), name, arguments)
    if function is None:
        raise PostgrestError(404, "PGRST202", f"Could not find the function {EXPOSED_SCHEMA}.{name}"
                             f"({', '.join(sorted(arguments))}) in the schema cache",
                             hint="only functions of schema public with named arguments can be called")
    if request.method != "POST" and not function.is_stable:
        raise PostgrestError(405, "PGRST101", f"{function.signature} is volatile; call it with POST")
    try:
        statement = builder.call(function, arguments)
    except TooManyValues as exc:
        raise PostgrestError(413, "PGRST413", str(exc)) from exc
    as_object = wants_object()

    def work(uow: UnitOfWork) -> Response:
        if request.method != "POST":
            uow.execute("set local transaction_read_only = on")
        row = fetch_one(uow, statement)
        if function.returns_void:
            return json_response(None, 204)
        body = row[0] if row is not None and row[0] is not None else "null"
        if as_object and function.returns_set:
            return json_response(singular(body, len(json.loads(body))), 200, {}, SINGULAR_TYPE)
        return json_response(body, 200)

    return in_transaction(caller, work)
