"""Response shaping for /rest/v1, as PostgREST answers (`src/library/PostgREST/Response.hs`): status codes,
`Content-Range`, `Preference-Applied`, the media type, the singular object and the body PostgreSQL produced.
"""
from __future__ import annotations

import json

from flask import Response, request

from api.rest.errors import PostgrestError
from api.rest.request import Media, Preferences

JSON_TYPE = "application/json; charset=utf-8"


def json_response(body: str | None, status: int, headers: dict[str, str] | None = None,
                  content_type: str = JSON_TYPE) -> Response:
    """A body PostgreSQL serialised (or none); HEAD keeps the headers and drops the body."""
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
    """The one object of a one-row array; any other row count is PostgREST's 406 PGRST116."""
    if rows != 1:
        raise PostgrestError(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                             details=f"The result contains {rows} rows")
    return json.dumps(json.loads(body)[0], separators=(",", ":"), ensure_ascii=False)


def content_range(offset: int, rows: int, total: int | None) -> str:
    total_text = "*" if total is None else str(total)
    return f"*/{total_text}" if rows == 0 else f"{offset}-{offset + rows - 1}/{total_text}"


def _applied(headers: dict[str, str], prefs: Preferences, *, read: bool) -> dict[str, str]:
    applied = prefs.applied(read=read)
    if applied:
        headers["Preference-Applied"] = applied
    return headers


def read_response(body: str, rows: int, *, offset: int, total: int | None, prefs: Preferences,
                  media: Media) -> Response:
    """A read's answer: 200 (206 when a counted page is short of the total), or 416 past the total."""
    if total is not None and rows == 0 and offset > total:
        raise PostgrestError(416, "PGRST103", "Requested range not satisfiable",
                             details=f"An offset of {offset} was requested, but there are only {total} rows.")
    headers = _applied({"Content-Range": content_range(offset, rows, total)}, prefs, read=True)
    if media.singular:
        return json_response(singular(body, rows), 200, headers, media.content_type)
    status = 206 if total is not None and rows < total else 200
    return json_response(body, status, headers, media.content_type)


def write_response(prefs: Preferences, rows: int, body: str | None, *, created: bool, media: Media,
                   status: int | None = None) -> Response:
    """A write's answer: 201 (POST) or 200/204 (PATCH, DELETE); `handling=strict` and singular checks first."""
    if prefs.strict and prefs.max_affected is not None and rows > prefs.max_affected:
        raise PostgrestError(400, "PGRST124", "Query result exceeds max-affected preference constraint",
                             details=f"The query affects {rows} rows")
    if media.singular:
        if rows != 1:
            singular("[]", rows)
        if body is not None:
            body = singular(body, rows)
    total = rows if prefs.wants_count else None
    if created or status is not None:
        headers = {"Content-Range": f"*/{'*' if total is None else total}"}
    else:
        headers = {"Content-Range": content_range(0, rows, total)}
    _applied(headers, prefs, read=False)
    if body is None:
        return json_response(None, status or (201 if created else 204), headers)
    return json_response(body, status or (201 if created else 200), headers, media.content_type)


def rpc_response(body: str, rows: int, *, total: int | None, returns_set: bool, prefs: Preferences, media: Media,
                 offset: int) -> Response:
    """A function's answer: its JSON (a set as an array with `Content-Range`, one row as an object)."""
    headers = _applied({}, prefs, read=True)
    if returns_set:
        headers["Content-Range"] = content_range(offset, rows, total)
        if media.singular:
            return json_response(singular(body, rows), 200, headers, media.content_type)
        status = 206 if total is not None and rows < total else 200
        return json_response(body, status, headers, media.content_type)
    if total is not None:
        headers["Content-Range"] = content_range(0, rows, total)
    return json_response(body, 200, headers, media.content_type)
