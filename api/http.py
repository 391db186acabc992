"""Cross-cutting HTTP behaviour: request ids, structured access logs (never secrets), CORS like Supabase's gateway,
`nosniff` on every response, request bodies bounded whatever their framing, and the one JSON input check.

The JSON check (`parse_json`, `check_json_value`, `JsonInputError`) is what every JSON entry point parses with —
`request.get_json()` through the app's JSON provider, and the surfaces that read raw bodies or frames call
`parse_json` themselves: nesting deeper than MAX_JSON_DEPTH, a NUL character (PostgreSQL's `text` and `jsonb`
cannot hold one) or a lone surrogate (not encodable as UTF-8) anywhere in a string or key, and JSON's invalid
constants (`NaN`, `Infinity`) are refused with one typed error naming the problem and the field; each surface
renders it in its own shape.
"""
from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask import Flask, Request, Response, g, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from api.errors import ApiError, PayloadTooLargeError
from observability.metrics import HTTP_LATENCY, HTTP_REQUESTS
from schemas.settings import Settings

log = logging.getLogger("segbase.access")

CORS_PREFIXES = ("/auth/v1", "/rest/v1", "/functions/v1", "/storage/v1")
CORS_ALLOW_HEADERS = ("authorization, x-client-info, apikey, content-type, x-retry-count, traceparent, tracestate, "
                      "baggage, x-supabase-api-version, accept-profile, content-profile, prefer, range, x-api-key, "
                      "x-region, webhook-id, webhook-timestamp, webhook-signature, x-upsert, cache-control, "
                      "x-metadata, content-encoding, if-none-match")
CORS_EXPOSE_HEADERS = ("Content-Range, X-Supabase-Api-Version, Content-Location, Preference-Applied, Retry-After, "
                       "Content-Length, Content-Disposition, ETag")
CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def bounds_own_body(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view that streams its request body and enforces a limit of its own (storage uploads): it is exempt
    from MAX_REQUEST_BYTES, and must set `request.max_content_length` before it reads the body."""
    view.bounds_own_body = True  # type: ignore[attr-defined]
    return view


def _bounds_own_body(app: Flask) -> bool:
    view = app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "bounds_own_body", False))


# --- the JSON input check ---------------------------------------------------------------------------------------

# Only an escape can put a NUL or a surrogate in a parsed string (the body is decoded as strict UTF-8, and strict
# parsing refuses raw control characters), so a body without one of these escapes, and with fewer brackets than the
# depth limit, needs no walk.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonInputError(ApiError, ValueError):
    """A JSON body (or frame) segbase will not take: `problem` is `invalid_json`, `too_deep`, `nul_character` or
    `invalid_unicode`, `field` the path to the offending value (`labels.0.name`, or `body` for the whole body).

    Rendered in segbase's envelope as 400 (`invalid_json`, `json_too_deep`) or 422 `validation_failed` with
    `fields` (a NUL or a lone surrogate in a value: the JSON is well-formed, one field is not acceptable); the auth
    surface renders the same status and code in GoTrue's shape, the data API in PostgREST's. A ValueError too, so
    `request.get_json(silent=True)` keeps Flask's contract (None for a body it cannot take)."""

    def __init__(self, problem: str, field: str, message: str) -> None:
        status, code = {"invalid_json": (400, "invalid_json"), "too_deep": (400, "json_too_deep")}.get(
            problem, (422, "validation_failed"))
        super().__init__(message if field == "body" else f"{field}: {message}", status=status, code=code, fields=[{"field": field, "message": message}])
        self.problem = problem
        self.field = field


def _field(path: list[str | int]) -> str:
    return ".".join(str(part) for part in path) if path else "body"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:32]} is out of range")
    return value


def check_json_value(value: Any, *, max_depth: int) -> None:
    """Refuse a parsed JSON value nested deeper than `max_depth` or holding a NUL or a lone surrogate in any
    string or key; raises JsonInputError naming the first offending field. Iterative: no recursion limit."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            _check_text(item, path)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if len(path) >= max_depth:
            raise JsonInputError("too_deep", _field(path),
                                 f"JSON nested deeper than {max_depth} levels (MAX_JSON_DEPTH)")
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, [*path, key])
                stack.append((child, [*path, key]))
        else:
            stack.extend((child, [*path, index]) for index, child in enumerate(item))


def _check_text(text: str, path: list[str | int]) -> None:
    if "\x00" in text:
        raise JsonInputError("nul_character", _field(path), "must not contain a NUL character (\\u0000)")
    if _LONE_SURROGATE.search(text):
        raise JsonInputError("invalid_unicode", _field(path),
                             "must be valid Unicode (a lone surrogate such as \\ud800 is not)")


def parse_json(raw: bytes | str, *, max_depth: int) -> Any:
    """Parse a UTF-8 JSON document strictly and check it (check_json_value); any refusal is a JsonInputError."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError as exc:
        raise JsonInputError("invalid_json", "body", f"the body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise JsonInputError("too_deep", "body", f"JSON nested deeper than {max_depth} levels (MAX_JSON_DEPTH)") \
            from exc
    except ValueError as exc:
        raise JsonInputError("invalid_json", "body", f"the body is not valid JSON: {str(exc)[:200]}") from exc
    if text.count("[") + text.count("{") > max_depth or _SUSPECT_ESCAPE.search(text):
        check_json_value(value, max_depth=max_depth)
    return value


class CheckedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with `loads` = parse_json, so `request.get_json()` is held to the same check."""

    max_depth = 64

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return parse_json(s, max_depth=self.max_depth)


# --- bounded request bodies ------------------------------------------------------------------------------------

class _BoundedBody(LimitedStream):
    """A body without Content-Length (chunked), limited to MAX_REQUEST_BYTES + 1: reading that extra byte means the
    body is too large. werkzeug's own limit stops reading at the maximum and hands back the truncated body."""

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted:
            self.on_exhausted()  # raises RequestEntityTooLarge (413)
        return data


class BoundedRequest(Request):
    """A request whose body is refused with 413 past `max_content_length`, with or without a Content-Length (a
    route that takes larger bodies raises `request.max_content_length` before reading)."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """`get_json()` refusing a body: the typed JsonInputError as it is (Flask's default is a bare 400)."""
        if isinstance(e, JsonInputError):
            raise e
        return super().on_json_loading_failed(e)

    @cached_property
    def stream(self):  # type: ignore[override]
        limit = self.max_content_length
        if limit is not None and self.content_length is None and "wsgi.input_terminated" in self.environ:
            return _BoundedBody(self.environ["wsgi.input"], limit + 1, is_max=True)
        return super().stream


# --- hooks -----------------------------------------------------------------------------------------------------

def _allowed_origin(settings: Settings, origin: str | None) -> str | None:
    if "*" in settings.cors_allowed_origins:
        return "*"
    if origin and origin in settings.cors_allowed_origins:
        return origin
    return None


def init_http(app: Flask, settings: Settings) -> None:
    app.request_class = BoundedRequest
    provider = CheckedJSONProvider(app)
    provider.max_depth = settings.max_json_depth
    provider.sort_keys = False
    app.json = provider

    @app.before_request
    def _start() -> Response | None:
        # A proxy's request id is kept for tracing when it looks like one; anything else (long, odd characters — it
        # is echoed in a header and every log line of the request) is replaced.
        offered = request.headers.get("X-Request-Id", "")
        g.request_id = offered if REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        g.started = time.perf_counter()
        if request.method == "OPTIONS" and request.path.startswith(CORS_PREFIXES):
            return Response("ok", status=200, mimetype="text/plain")
        # Refuse before the view runs, so an oversized body is 413 on every path and is never read — except for
        # the few views that bound their own body (object uploads, up to STORAGE_MAX_FILE_SIZE).
        if _bounds_own_body(app):
            return None  # MAX_REQUEST_BYTES still bounds its stream until the view sets its own limit
        if request.content_length is not None and request.content_length > settings.max_request_bytes:
            raise PayloadTooLargeError(f"request body exceeds {settings.max_request_bytes} bytes")
        return None

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        # No response is ever to be sniffed into another type (an error page into HTML, JSON into script).
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Werkzeug upper-cases reason phrases ("201 CREATED"); PostgREST and GoTrue send RFC 9110's ("201 Created"),
        # and postgrest-js exposes the phrase as `statusText`.
        try:
            response.status = f"{response.status_code} {HTTPStatus(response.status_code).phrase}"
        except ValueError:  # a status without a registered phrase keeps Werkzeug's
            pass
        if request.path.startswith(CORS_PREFIXES):
            origin = _allowed_origin(settings, request.headers.get("Origin"))
            if origin:
                response.headers["Access-Control-Allow-Origin"] = origin
                if origin != "*":
                    response.headers["Vary"] = "Origin"
                response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
                response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
                response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        # Label by the route template, not the raw path, so ids in URLs cannot explode the series count.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(elapsed)
        # The path only: query strings may carry `apikey`, tokens or user data.
        elapsed_ms = elapsed * 1000
        log.info("request", extra={"request_id": g.get("request_id"), "method": request.method,
                                   "path": request.path, "status": response.status_code,
                                   "duration_ms": round(elapsed_ms, 2)})
        return response
