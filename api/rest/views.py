"""The /rest/v1 routes: tables and views (read, insert, update, delete) and functions (`/rpc/<name>`).

Each view parses the request (api/rest/request.py), plans it against the schema cache (db/rest/plan.py), lets
db/rest/builder.py compose one SQL statement, runs it in one unit of work as the caller, and shapes the answer
(api/rest/response.py).
"""
from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from flask import Blueprint, Response, g, request
from sqlalchemy.exc import DBAPIError, OperationalError

from api.identity import TokenError, credentials_from_request, resolve_caller
from api.rest.errors import PostgrestError, bad_request, database_error, token_error
from api.rest.request import (
    Media,
    Preferences,
    accepted_media,
    parse,
    parse_json_body,
    parse_query,
    parse_range_header,
    preferences,
    profile,
    read_body,
)
from api.rest.response import json_response, read_response, rpc_response, write_response
from api.services import services
from db.rest import builder, grammar
from db.rest.builder import Shape, Statement, TooManyValues, UnknownColumn
from db.rest.cache import CatalogCache
from db.rest.catalog import Catalog, Column, Function, Table
from db.rest.errors import RequestError
from db.rest.execute import fetch_one, planned_rows, row_count, upserted_existing
from db.rest.plan import Node, Planner, Source
from db.uow import Caller, UnitOfWork, unit_of_work

bp = Blueprint("rest", __name__)
T = TypeVar("T")
# A name the schema cache does not know may be new: reload once before answering with these codes.
RELOAD_CODES = frozenset({"42703", "PGRST200", "PGRST202", "PGRST204", "PGRST205"})


# --- request plumbing ------------------------------------------------------------------------------------------

@bp.after_request
def content_profile(response: Response) -> Response:
    """With several exposed schemas, a successful answer names its schema (`Content-Profile`), as PostgREST's."""
    schema = g.get("rest_profile")
    if schema is not None and response.status_code < 400:
        response.headers["Content-Profile"] = schema
    return response


def catalog_cache() -> CatalogCache:
    return services().rest_catalog


def current_caller() -> Caller:
    apikey, bearer = credentials_from_request(request)
    svc = services()
    try:
        return resolve_caller(apikey=apikey, bearer=bearer, settings=svc.settings, engine=svc.engine)
    except TokenError as exc:
        raise token_error(exc) from exc


class _RolledBack(Exception):
    """Carries the response of a `Prefer: tx=rollback` request out of its transaction, which then rolls back."""

    def __init__(self, response: Response) -> None:
        super().__init__("tx=rollback")
        self.response = response


def in_transaction(caller: Caller, work: Callable[[UnitOfWork], Response], *, rollback: bool = False) -> Response:
    """Run `work` as one transaction as `caller`; an exception (a PostgREST error included) rolls it back, and so
    does `rollback` once the response is built."""
    try:
        with unit_of_work(services().engine, caller) as uow:
            response = work(uow)
            if rollback:
                raise _RolledBack(response)
            return response
    except _RolledBack as done:
        return done.response
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


def as_postgrest(exc: RequestError) -> PostgrestError:
    return PostgrestError(exc.status, exc.code, exc.message, details=exc.details, hint=exc.hint)


def with_catalog(cache: CatalogCache, make: Callable[[Catalog], T], *, write_columns: bool = False) -> T:
    """Plan and compose against the schema cache; a name it does not know triggers one reload before the error."""
    for attempt in (1, 2):
        catalog = cache.get()
        try:
            return make(catalog)
        except RequestError as exc:
            if attempt == 1 and exc.code in RELOAD_CODES and cache.reload_after_miss():
                continue
            raise as_postgrest(exc) from exc
        except UnknownColumn as exc:
            if attempt == 1 and cache.reload_after_miss():
                continue
            if write_columns:
                raise PostgrestError(400, "PGRST204", f"Could not find the '{exc.column}' column of "
                                     f"'{exc.table}' in the schema cache") from exc
            raise PostgrestError(400, "42703", f"column {exc.table}.{exc.column} does not exist") from exc
        except TooManyValues as exc:
            raise PostgrestError(413, "PGRST413", str(exc)) from exc
        except grammar.GrammarError as exc:
            raise bad_request(exc.message, details=exc.details) from exc
    raise AssertionError("unreachable")


def lookup_table(catalog: Catalog, schema: str, name: str) -> Table:
    table = catalog.table(name, schema)
    if table is None:
        close = difflib.get_close_matches(name, catalog.table_names(schema), n=1)
        raise RequestError(404, "PGRST205", f"Could not find the table '{schema}.{name}' in the schema cache",
                           hint=f"Perhaps you meant the table '{schema}.{close[0]}'" if close else None)
    return table


def shape_of(media: Media) -> Shape:
    return Shape("csv" if media.kind == "csv" else "json", media.strip_nulls)


# --- tables ----------------------------------------------------------------------------------------------------

@bp.route("/<name>", methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"])
@database_unavailable_is_503
def table_endpoint(name: str) -> Response:
    settings = services().settings
    schema = profile(settings.rest_schemas)
    caller = current_caller()
    cache = catalog_cache()
    with_catalog(cache, lambda catalog: lookup_table(catalog, schema, name))
    if request.method in ("GET", "HEAD"):
        return read(cache, schema, name, caller)
    if request.method == "POST":
        return create(cache, schema, name, caller)
    if request.method == "PUT":
        raise PostgrestError(405, "PGRST117", "PUT is not supported",
                             hint="upsert with POST and Prefer: resolution=merge-duplicates")
    return modify(cache, schema, name, caller)


def read(cache: CatalogCache, schema: str, name: str, caller: Caller) -> Response:
    settings = services().settings
    prefs = preferences()
    media = accepted_media()
    query = parse_query()
    range_offset, range_limit = parse_range_header(request.headers.get("Range"))
    offset = query.offsets.get((), range_offset)
    limits = [x for x in (query.limits.get(()), range_limit) if x is not None]
    if limits:
        query.limits[()] = min(limits)
    query.offsets[()] = offset

    def make(catalog: Catalog) -> tuple[Statement, Statement | None]:
        planner = Planner(catalog, schema, settings.rest_max_rows, aggregates=settings.rest_aggregates_enabled)
        root = planner.plan(Source.of(lookup_table(catalog, schema, name)), query)
        estimate = builder.count_estimate(planner, root) if prefs.count in ("planned", "estimated") else None
        return builder.read(planner, root, count=prefs.count in ("exact", "estimated"),
                            shape=shape_of(media)), estimate

    statement, estimate = with_catalog(cache, make)

    def work(uow: UnitOfWork) -> Response:
        total, rows, body = fetch_one(uow, statement)
        if estimate is not None:
            # planned: the planner's estimate; estimated: that estimate only when it is past REST_MAX_ROWS
            planned = planned_rows(uow, estimate)
            if prefs.count == "planned" or planned > settings.rest_max_rows:
                total = planned
        return read_response(body, rows, offset=offset, total=total, prefs=prefs, media=media)

    return in_transaction(caller, work, rollback=prefs.rollback)


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


def representation_of(planner: Planner, table: Table, query: grammar.Query, prefs: Preferences) -> Node | None:
    """The read tree a write answers with under `return=representation` (its root filters and range belong to
    the write itself); None means no body."""
    if not prefs.representation:
        return None
    return planner.plan(Source.of(table), query, root_filters=False, root_range=False)


def create(cache: CatalogCache, schema: str, name: str, caller: Caller) -> Response:
    prefs = preferences()
    media = accepted_media()
    body = read_body()
    rows = [body] if isinstance(body, dict) else body
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise PostgrestError(400, "PGRST102", "Empty or invalid json",
                             details="expected a JSON object or an array of objects")
    query = parse_query()
    if not rows:
        return write_response(prefs, 0, "[]" if prefs.representation else None, created=True, media=media)
    columns = insert_columns(rows, prefs.missing_default)
    resolution = prefs.resolution
    on_conflict = parse(lambda: grammar.parse_columns(request.args["on_conflict"])) \
        if resolution and "on_conflict" in request.args else None

    def make(catalog: Catalog) -> Statement:
        table = lookup_table(catalog, schema, name)
        if resolution and not on_conflict and not table.primary_key:
            raise RequestError(400, "PGRST100", f"on_conflict is required: '{table.name}' has no primary key")
        planner = Planner(catalog, schema, None, aggregates=services().settings.rest_aggregates_enabled)
        return builder.insert(planner, table, columns, rows, missing_default=prefs.missing_default,
                              on_conflict=on_conflict, resolution=resolution,
                              representation=representation_of(planner, table, query, prefs),
                              shape=shape_of(media))

    statement = with_catalog(cache, make, write_columns=True)
    return in_transaction(caller, lambda uow: run_write(uow, statement, prefs, created=True, media=media),
                          rollback=prefs.rollback)


def run_write(uow: UnitOfWork, statement: Statement, prefs: Preferences, *, created: bool,
              media: Media) -> Response:
    if not prefs.representation:
        rows, body = row_count(uow, statement), None
    else:
        _total, rows, body = fetch_one(uow, statement)
    # A merge-duplicates upsert that inserted nothing answers 200, as PostgREST's.
    inserted_nothing = created and prefs.resolution == "merge-duplicates" and rows > 0 \
        and upserted_existing(uow) >= rows
    return write_response(prefs, rows, body, created=created and not inserted_nothing, media=media,
                          status=200 if inserted_nothing else None)


def modify(cache: CatalogCache, schema: str, name: str, caller: Caller) -> Response:
    prefs = preferences()
    media = accepted_media()
    for key in ("limit", "offset", "order"):
        if key in request.args:
            raise bad_request(f"`{key}` is not supported on {request.method}")
    query = parse_query()
    filters = query.filters
    verb = "UPDATE" if request.method == "PATCH" else "DELETE"
    if not filters:
        raise PostgrestError(400, "21000", f"{verb} requires a WHERE clause",
                             hint="add a filter such as ?id=eq.<id>; unfiltered PATCH and DELETE are refused")
    patch: Any = None
    if request.method == "PATCH":
        patch = read_body()
        if not isinstance(patch, dict):
            raise PostgrestError(400, "PGRST102", "Empty or invalid json", details="expected a JSON object")

    def make(catalog: Catalog) -> Statement | None:
        table = lookup_table(catalog, schema, name)
        planner = Planner(catalog, schema, None, aggregates=services().settings.rest_aggregates_enabled)
        root = Node(Source.of(table), table.name)
        representation = representation_of(planner, table, query, prefs)
        if request.method == "PATCH":
            if not patch:
                builder.check_filters(planner, root, filters)
                return None
            return builder.update(planner, table, patch, root, filters, representation, shape_of(media))
        return builder.delete(planner, table, root, filters, representation, shape_of(media))

    statement = with_catalog(cache, make, write_columns=True)
    if statement is None:  # an empty PATCH changes nothing
        return write_response(prefs, 0, "[]" if prefs.representation else None, created=False, media=media)
    return in_transaction(caller, lambda uow: run_write(uow, statement, prefs, created=False, media=media),
                          rollback=prefs.rollback)


# --- functions -------------------------------------------------------------------------------------------------

NON_JSON_BODIES = ("text/plain", "text/xml", "application/octet-stream")
SINGLE_UNNAMED = {("application/json", "json"), ("application/json", "jsonb"), ("text/plain", "text"),
                  ("text/xml", "xml"), ("application/octet-stream", "bytea")}


def matches_arguments(function: Function, keys: frozenset[str], *, is_post: bool, content_type: str) -> bool:
    """PostgREST's overload rule: every required argument given and nothing unknown (an unnamed argument is
    called "", as `{"": value}` names it)."""
    if not function.arguments:
        return not keys and not (is_post and content_type in NON_JSON_BODIES)
    return function.required <= keys <= {arg.name for arg in function.arguments}


def overload_order(function: Function) -> tuple[tuple[str, str], ...]:
    """PostgREST lists candidates ordered by their parameters (names, then types)."""
    return tuple((arg.name, arg.type) for arg in function.arguments)


def find_function(catalog: Catalog, schema: str, name: str, keys: frozenset[str], *, is_post: bool,
                  content_type: str) -> Function:
    """The function `name` called with argument `keys` (or, failing that, the one taking the whole body as its
    single unnamed argument); PGRST202 when none, PGRST203 when several."""
    candidates = catalog.functions_named(name, schema)
    named = [f for f in candidates if matches_arguments(f, keys, is_post=is_post, content_type=content_type)]
    fallback = [f for f in candidates if is_post and len(f.arguments) == 1 and not f.arguments[0].name
                and (content_type, f.arguments[0].type_name) in SINGLE_UNNAMED]
    chosen = sorted(named or fallback, key=overload_order)
    if len(chosen) == 1:
        return chosen[0]
    if chosen:
        raise RequestError(300, "PGRST203", "Could not choose the best candidate function between: "
                           f"{', '.join(f.signature for f in chosen)}",
                           hint="Try renaming the parameters or the function itself in the database so function "
                                "overloading can be resolved")
    listed = ", ".join(sorted(keys))
    single = is_post and content_type in NON_JSON_BODIES
    message = f"Could not find the function {schema}.{name}" + (
        "" if single else (f"({listed})" if keys else " without parameters")) + " in the schema cache"
    with_params = (f" with parameter{'s' if len(keys) > 1 else ''} {listed}" if keys else " without parameters")
    suffix = {"text/plain": " with a single unnamed text parameter", "text/xml": " with a single unnamed xml parameter",
              "application/octet-stream": " with a single unnamed bytea parameter"}.get(content_type) if is_post else None
    if suffix is None:
        suffix = with_params + (" or with a single unnamed json/jsonb parameter"
                                if is_post and content_type == "application/json" else "")
    if candidates:
        options = {"(" + ", ".join(sorted(a.name for a in f.arguments)) + ")" for f in candidates}
        close = difflib.get_close_matches("(" + listed + ")", sorted(options), n=1, cutoff=0.33)
        hint = f"Perhaps you meant to call the function {schema}.{name}{close[0]}" if close else None
    else:
        close = difflib.get_close_matches(name, catalog.function_names(schema), n=1, cutoff=0.75)
        hint = f"Perhaps you meant to call the function {schema}.{close[0]}" if close else None
    raise RequestError(404, "PGRST202", message,
                       details=f"Searched for the function {schema}.{name}{suffix}, but no matches were found in "
                               f"the schema cache.", hint=None if single else hint)


def function_source(catalog: Catalog, function: Function) -> tuple[Source | None, str]:
    """What a function's rows look like: a table or view of the catalog, the TABLE/OUT columns, or a scalar."""
    if function.return_table and function.return_table_schema:
        table = catalog.table(function.return_table, function.return_table_schema)
        if table is not None:
            return Source.of(table), table.name
    if function.out_columns:
        columns = {name: Column(name, type_, type_.removesuffix("[]"), type_.endswith("[]"), False, False)
                   for name, type_ in function.out_columns}
        return Source(function.schema, function.name, columns), function.name
    if function.returns_composite:
        return Source(function.schema, function.name, {}), function.name
    return None, function.name


def rpc_query_and_arguments(is_post: bool) -> tuple[grammar.Query, dict[str, Any]]:
    """Split the query string: reserved parameters and filters shape the result; on GET/HEAD any other
    parameter (a value without an operator) is an argument."""
    params = list(request.args.items(multi=True))
    if is_post:
        return parse_query(params), {}
    shaping, arguments = [], {}
    for key, value in params:
        if key in grammar.RESERVED or grammar.split_key(key)[-1] in grammar.RESERVED_EMBEDDABLE:
            shaping.append((key, value))
            continue
        try:
            grammar.parse_filter(grammar.Filters(), key, value)
            shaping.append((key, value))
        except grammar.GrammarError:
            arguments[key] = value
    return parse_query(shaping), arguments


def whole_body_of(raw: bytes, content_type: str) -> str | bytes:
    """The body as the single unnamed argument: bytes for bytea, else text (it must be UTF-8)."""
    if content_type == "application/octet-stream":
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, "PGRST102", "Empty or invalid json", details="the body is not UTF-8") from exc


@bp.route("/rpc/<name>", methods=["GET", "HEAD", "POST"])
@database_unavailable_is_503
def rpc_endpoint(name: str) -> Response:
    settings = services().settings
    schema = profile(settings.rest_schemas)
    caller = current_caller()
    cache = catalog_cache()
    prefs = preferences()
    media = accepted_media()
    is_post = request.method == "POST"
    content_type = (request.mimetype or "application/json").lower() if is_post else ""
    if is_post and content_type not in NON_JSON_BODIES:
        content_type = "application/json"
    raw = request.get_data(cache=False) if is_post else b""
    query, arguments = rpc_query_and_arguments(is_post)
    if is_post and content_type == "application/json":
        body = parse_json_body(raw)
        arguments = {} if body is None else body
    keys = frozenset(arguments) if isinstance(arguments, dict) else frozenset()

    def make(catalog: Catalog) -> tuple[Function, Statement]:
        function = find_function(catalog, schema, name, keys, is_post=is_post, content_type=content_type)
        positional = len(function.arguments) == 1 and not function.arguments[0].name
        if not is_post and not function.is_stable:
            raise RequestError(405, "PGRST101", f"Cannot use the {request.method} method on RPC",
                               hint=f"{function.signature} is volatile; call it with POST")
        if not positional and not isinstance(arguments, dict):
            raise RequestError(400, "PGRST102", "Empty or invalid json",
                               details="expected a JSON object of named arguments")
        if prefs.strict and prefs.max_affected is not None and not function.returns_set:
            raise RequestError(400, "PGRST128", "Function must return SETOF or TABLE when max-affected preference "
                                                "is used with handling=strict")
        source, alias = function_source(catalog, function)
        planner = Planner(catalog, schema, settings.rest_max_rows if function.returns_set else None,
                          aggregates=settings.rest_aggregates_enabled)
        root = planner.plan(source, query, alias=alias) if source is not None else None
        if root is None and (query.filters or query.filters.embedded or query.order):
            raise RequestError(400, "PGRST100", f"{function.signature} returns a scalar; it cannot be filtered "
                                                "or ordered")
        whole_body = whole_body_of(raw, content_type) if is_post else builder.json_text(arguments)
        statement = builder.call(planner, function, {} if positional else arguments, root,
                                 count=prefs.wants_count, shape=shape_of(media), positional_value=whole_body
                                 if positional else None)
        return function, statement

    function, statement = with_catalog(cache, make)

    def work(uow: UnitOfWork) -> Response:
        if not is_post:
            uow.execute("set local transaction_read_only = on")
        total, rows, result = fetch_one(uow, statement)
        if prefs.strict and prefs.max_affected is not None and rows > prefs.max_affected:
            raise PostgrestError(400, "PGRST124", "Query result exceeds max-affected preference constraint",
                                 details=f"The query affects {rows} rows")
        if function.returns_void:
            return json_response(None, 204)
        return rpc_response(result, rows, total=total, returns_set=function.returns_set, prefs=prefs, media=media,
                            offset=query.offsets.get((), 0))

    return in_transaction(caller, work, rollback=prefs.rollback)
