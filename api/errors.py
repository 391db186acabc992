"""One error envelope. `ApiError` carries a stable snake_case code, an HTTP status and data; one handler renders it.

Supabase-compatible surfaces need the body shapes their clients parse (GoTrue `{code, message}`, PostgREST
`{code, message, details, hint}`, the edge runtime's `{msg}`), so an error may override `body()` and `headers()`;
everything else gets segbase's own `{"error": {"code", "message", ...}}`.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from flask import Flask, Response, current_app, g, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 **data: Any) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.data = data

    def body(self) -> Any:
        return {"error": {"code": self.code, "message": self.message, **self.data}}

    def headers(self) -> dict[str, str]:
        return {}

    def response(self) -> Response:
        response = jsonify(self.body())
        response.status_code = self.status
        for name, value in self.headers().items():
            response.headers[name] = value
        return response


class NotFoundError(ApiError):
    status, code = 404, "not_found"


class UnauthorizedError(ApiError):
    status, code = 401, "unauthorized"


class PayloadTooLargeError(ApiError):
    status, code = 413, "payload_too_large"


class GatewayError(ApiError):
    """What Supabase's API gateway answers before any service sees the request: a missing or invalid `apikey`,
    401 `{message, hint}` (built by `api.identity.gateway_error`)."""

    status, code = 401, "invalid_api_key"

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint

    def body(self) -> Any:
        return {"message": self.message, "hint": self.hint}


class ServiceUnavailableError(ApiError):
    status, code = 503, "service_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.data.get("retry_after", 5))}

    def body(self) -> Any:
        return {"error": {"code": self.code, "message": self.message}}


def validation_error(exc: ValidationError) -> ApiError:
    """Map a pydantic error to the envelope, naming each offending field."""
    fields = [
        {"field": ".".join(str(part) for part in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = fields[0] if fields else {"field": "body", "message": "invalid"}
    return ApiError(f"{first['field']}: {first['message']}", status=422, code="validation_failed", fields=fields)


def client_mistake(exc: BaseException) -> ApiError | None:
    """An exception that only the client's input can cause, as the 400 it deserves; None for anything else.

    PostgreSQL's data exceptions (SQLSTATE class 22: a value that is not valid for its type, a NUL character,
    a number out of range — the class PostgREST also answers 400) and psycopg's own refusals of a value before it
    is sent; text that cannot be encoded (a lone surrogate); input nested past Python's recursion limit."""
    original = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's exception
    if isinstance(original, psycopg.DataError) and (original.sqlstate or "22").startswith("22"):
        primary = original.diag.message_primary if original.sqlstate else None
        return ApiError(f"invalid input: {primary or str(original).splitlines()[0][:200]}", code="invalid_input")
    if isinstance(original, UnicodeEncodeError):
        return ApiError("invalid input: text is not valid Unicode (a lone surrogate)", code="invalid_input")
    if isinstance(original, RecursionError):
        return ApiError("invalid input: nested too deeply", code="invalid_input")
    return None


HttpErrorRenderer = Callable[[HTTPException], Response]
_RENDERERS_KEY = "segbase.http_error_renderers"


def register_http_error_renderer(app: Flask, prefix: str, render: HttpErrorRenderer) -> None:
    """Let a surface answer routing errors under its URL prefix (an unknown path, a wrong method) in the shape its
    clients parse. Blueprint error handlers cannot: no blueprint has matched when routing fails."""
    app.extensions.setdefault(_RENDERERS_KEY, {})[prefix.rstrip("/")] = render


def _surface_renderer(path: str) -> HttpErrorRenderer | None:
    for prefix, render in current_app.extensions.get(_RENDERERS_KEY, {}).items():
        if path == prefix or path.startswith(prefix + "/"):
            return render
    return None


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return exc.response()

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError) -> Response:
        return validation_error(exc).response()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        render = _surface_renderer(request.path)
        if render is not None:
            return render(exc)
        code = (exc.name or "error").lower().replace(" ", "_")
        error = ApiError(exc.description or exc.name, status=exc.code or 500, code=code)
        if exc.code == 413:
            error = PayloadTooLargeError("request body too large")
        return error.response()

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        refused = client_mistake(exc)
        if refused is not None:
            # The client's input, not a fault of ours: a 400 in the surface's own shape (its handlers render it),
            # logged without a traceback.
            log.info("refused invalid input (request %s): %s", getattr(g, "request_id", "-"), refused.message)
            return current_app.handle_user_exception(refused)
        error_id = uuid.uuid4().hex
        log.exception("unhandled error %s (request %s)", error_id, getattr(g, "request_id", "-"))
        return ApiError("internal error", status=500, code="internal_error", error_id=error_id).response()
