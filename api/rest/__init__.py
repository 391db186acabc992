"""/rest/v1 — the PostgREST subset the Supabase clients use, over the schema `public`, under RLS.

Each request is one unit of work: the caller comes from `api.identity.resolve_caller`, the transaction runs as the
caller's role with its JWT claims (db/uow.py), and PostgreSQL — RLS, grants, triggers — decides what is read or
written. This module only parses the request (db/rest/grammar.py), looks names up in the schema cache
(db/rest/catalog.py), lets db/rest/builder.py compose the SQL, and shapes the answer like PostgREST.
The grammar, what is left out and the error mapping are in docs/REST.md.
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
from api.services import services
from db.rest import builder, grammar
from db.rest.builder import Statement, TooManyValues, UnknownColumn
from db.rest.cache import CatalogCache
from db.rest.catalog import EXPOSED_SCHEMA, Catalog, Function, Table
from db.uow import Caller, UnitOfWork, unit_of_work

bp = Blueprint("rest", __name__)

JSON_TYPE = "application/json; charset=utf-8"
OBJECT_TYPE = "application/vnd.pgrst.object+json"
RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict", "apikey"})


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


def check_profile() -> None:
    header = "Accept-Profile" if request.method in ("GET", "HEAD") else "Content-Profile"
    profile = request.headers.get(header)
    if profile is not None and profile != EXPOSED_SCHEMA:
        raise PostgrestError(406, "PGRST106", f"The schema must be one of the following: {EXPOSED_SCHEMA}",
                             details=f"{header}: {profile}")


def preferences() -> dict[str, str]:
    prefs: dict[str, str] = {}
    for header in request.headers.getlist("Prefer"):
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key:
                prefs[key.strip().lower()] = value.strip()
    return prefs


def wants_object() -> bool:
    """`Accept: application/vnd.pgrst.object+json` → one object; JSON or anything-goes → an array; else 406."""
    accept = request.headers.get("Accept", "*/*")
    media = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if OBJECT_TYPE in media:
        return True
    if any(m in ("*/*", "application/*", "application/json", "application/vnd.pgrst.array+json", "")
           for m in media):
        return False
    raise PostgrestError(406, "PGRST107", f"None of these media types are available: {accept}")


def execute(uow: UnitOfWork, statement: Statement) -> psycopg.Cursor:
    cursor = uow.connection.connection.driver_connection.cursor()
    cursor.execute(statement.query, statement.params)
    return cursor


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


def json_response(body: str | None, status: int, headers: dict[str, str] | None = None,
                  content_type: str = JSON_TYPE) -> Response:
    if body is None or request.method == "HEAD":
        response = Response(status=status)
        if body is not None:
            response.headers["Content-Type"] = content_type
    else:
        response = Response(body, status=status, content_type=content_type)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def singular(body: str, rows: int) -> str:
    if rows != 1:
        raise PostgrestError(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                             details=f"The result contains {rows} rows")
    return json.dumps(json.loads(body)[0], separators=(",", ":"), ensure_ascii=False)


def content_range(offset: int, rows: int, total: int | None) -> str:
    total_text = "*" if total is None else str(total)
    return f"*/{total_text}" if rows == 0 else f"{offset}-{offset + rows - 1}/{total_text}"


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


def parse(make: Callable[[], Any]) -> Any:
    try:
        return make()
    except grammar.GrammarError as exc:
        raise bad_request(exc.message, details=exc.details) from exc


def parse_filters() -> grammar.Filters:
    filters = grammar.Filters()
    for key, value in request.args.items(multi=True):
        if key not in RESERVED:
            parse(lambda k=key, v=value: grammar.parse_filter(filters, k, v))
    return filters


def read_body() -> Any:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PostgrestError(400, "PGRST102", "Empty or invalid json", details=str(exc)[:200]) from exc


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
    range_offset, range_limit = parse_range_header()
    offset = offset if offset is not None else range_offset
    limit = min(x for x in (limit, range_limit, settings.rest_max_rows) if x is not None)
    filters = parse_filters()
    prefs = preferences()
    want_count = prefs.get("count") in ("exact", "planned", "estimated")
    as_object = wants_object()
    statement = build(cache, name, lambda t: builder.read(t, select, filters, order, limit, offset))
    count_statement = build(cache, name, lambda t: builder.count(t, filters)) if want_count else None

    def work(uow: UnitOfWork) -> Response:
        rows, body = execute(uow, statement).fetchone()
        total = execute(uow, count_statement).fetchone()[0] if count_statement is not None else None
        if total is not None and rows == 0 and offset > total:
            raise PostgrestError(416, "PGRST103", "Requested range not satisfiable",
                                 details=f"An offset of {offset} was requested, but there are only {total} rows.")
        headers = {"Content-Range": content_range(offset, rows, total)}
        if want_count:
            headers["Preference-Applied"] = "count=exact"
        if as_object:
            return json_response(singular(body, rows), 200, headers, f"{OBJECT_TYPE}; charset=utf-8")
        status = 206 if total is not None and rows < total else 200
        return json_response(body, status, headers)

    return in_transaction(caller, work)


def parse_range_header() -> tuple[int, int | None]:
    value = request.headers.get("Range")
    if not value:
        return 0, None
    start, dash, end = value.strip().removeprefix("items=").partition("-")
    if not dash or not start.isdigit() or (end and not end.isdigit()) or (end and int(end) < int(start)):
        raise PostgrestError(416, "PGRST103", "Requested range not satisfiable", details=f"Range: {value}")
    return int(start), (int(end) - int(start) + 1) if end else None


def representation(prefs: dict[str, str]) -> list[grammar.SelectItem] | None:
    if prefs.get("return") == "representation":
        return parse(lambda: grammar.parse_select(request.args.get("select")))
    return None


def applied(prefs: dict[str, str], *keys: str) -> dict[str, str]:
    values = [f"{k}={prefs[k]}" for k in keys if k in prefs]
    return {"Preference-Applied": ", ".join(values)} if values else {}


def write_response(prefs: dict[str, str], rows: int, body: str | None, *, created: bool) -> Response:
    as_object = wants_object()
    max_affected = prefs.get("max-affected")
    if prefs.get("handling") == "strict" and max_affected and max_affected.isdigit() and rows > int(max_affected):
        raise PostgrestError(400, "PGRST124", "Query result exceeds max-affected preference constraint",
                             details=f"The query affects {rows} rows")
    if as_object:
        if rows != 1:
            singular("[]", rows)
        if body is not None:
            body = singular(body, rows)
    total = rows if prefs.get("count") in ("exact", "planned", "estimated") else None
    if created:
        headers = {"Content-Range": f"*/{'*' if total is None else total}"}
    else:
        headers = {"Content-Range": content_range(0, rows, total)}
    headers.update(applied(prefs, "return", "count", "resolution", "missing", "handling"))
    content_type = f"{OBJECT_TYPE}; charset=utf-8" if as_object else JSON_TYPE
    if body is None:
        return json_response(None, 201 if created else 204, headers)
    return json_response(body, 201 if created else 200, headers, content_type)


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
    select = representation(prefs)
    if not rows:
        return write_response(prefs, 0, "[]" if select is not None else None, created=True)
    missing_default = prefs.get("missing") == "default"
    columns = insert_columns(rows, missing_default)
    resolution = prefs.get("resolution")
    if resolution not in (None, "merge-duplicates", "ignore-duplicates"):
        resolution = None
    on_conflict = parse(lambda: grammar.parse_columns(request.args["on_conflict"])) \
        if resolution and "on_conflict" in request.args else None

    def make(table: Table) -> Statement:
        if resolution and not on_conflict and not table.primary_key:
            raise bad_request(f"on_conflict is required: '{table.name}' has no primary key")
        return builder.insert(table, columns, rows, missing_default=missing_default, on_conflict=on_conflict,
                              resolution=resolution, select=select)

    statement = build(cache, name, make, write_columns=True)
    return in_transaction(caller, lambda uow: run_write(uow, statement, prefs, select, created=True))


def run_write(uow: UnitOfWork, statement: Statement, prefs: dict[str, str],
              select: list[grammar.SelectItem] | None, *, created: bool) -> Response:
    cursor = execute(uow, statement)
    if select is None:
        return write_response(prefs, max(cursor.rowcount, 0), None, created=created)
    rows, body = cursor.fetchone()
    return write_response(prefs, rows, body, created=created)


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
    select = representation(prefs)
    if request.method == "PATCH":
        patch = read_body()
        if not isinstance(patch, dict):
            raise PostgrestError(400, "PGRST102", "Empty or invalid json", details="expected a JSON object")
        if not patch:
            build(cache, name, lambda t: builder.count(t, filters))  # still validates the filters
            return write_response(prefs, 0, "[]" if select is not None else None, created=False)
        statement = build(cache, name, lambda t: builder.update(t, patch, filters, select), write_columns=True)
    else:
        statement = build(cache, name, lambda t: builder.delete(t, filters, select))
    return in_transaction(caller, lambda uow: run_write(uow, statement, prefs, select, created=False))


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

    def work(uow: UnitOfWork) -> Response:
        if request.method != "POST":
            uow.execute("set local transaction_read_only = on")
        cursor = execute(uow, statement)
        if function.returns_void:
            return json_response(None, 204)
        row = cursor.fetchone()
        body = row[0] if row is not None and row[0] is not None else "null"
        if wants_object() and function.returns_set:
            return json_response(singular(body, len(json.loads(body))), 200, {},
                                 f"{OBJECT_TYPE}; charset=utf-8")
        return json_response(body, 200)

    return in_transaction(caller, work)
