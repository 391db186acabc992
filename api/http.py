"""Cross-cutting HTTP behaviour: request ids, structured access logs (never secrets), CORS like Supabase's gateway."""
from __future__ import annotations

import logging
import time
import uuid
from http import HTTPStatus

from flask import Flask, Response, g, request

from api.errors import PayloadTooLargeError
from observability.metrics import HTTP_LATENCY, HTTP_REQUESTS
from schemas.settings import Settings

log = logging.getLogger("segbase.access")

CORS_PREFIXES = ("/auth/v1", "/rest/v1", "/functions/v1")
CORS_ALLOW_HEADERS = ("authorization, x-client-info, apikey, content-type, x-retry-count, traceparent, tracestate, "
                      "baggage, x-supabase-api-version, accept-profile, content-profile, prefer, range, x-api-key, "
                      "x-region, webhook-id, webhook-timestamp, webhook-signature")
CORS_EXPOSE_HEADERS = "Content-Range, X-Supabase-Api-Version, Content-Location, Preference-Applied, Retry-After"
CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def _allowed_origin(settings: Settings, origin: str | None) -> str | None:
    if "*" in settings.cors_allowed_origins:
        return "*"
    if origin and origin in settings.cors_allowed_origins:
        return origin
    return None


def init_http(app: Flask, settings: Settings) -> None:
    @app.before_request
    def _start() -> Response | None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        g.started = time.perf_counter()
        if request.method == "OPTIONS" and request.path.startswith(CORS_PREFIXES):
            return Response("ok", status=200, mimetype="text/plain")
        # Refuse before routing, so an oversized body is 413 on every path and is never read.
        if request.content_length is not None and request.content_length > settings.max_request_bytes:
            raise PayloadTooLargeError(f"request body exceeds {settings.max_request_bytes} bytes")
        return None

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
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
