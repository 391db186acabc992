"""Storage's one error envelope: `{"statusCode": "<status>", "code", "error", "message"}` with the real HTTP status.

storage3 raises `StorageApiError(message, code=body.error, status=body.statusCode)` and needs all of `statusCode`,
`error` and `message` (else "Unable to parse error message"); storage-js reads `message`, `statusCode`, `code`.
Upstream answers HTTP 400 for most errors with the real status only in the body (a legacy its maintainers regret,
supabase/storage#323); segbase sends the real status in both, which every client reads the same way.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from api.errors import ApiError
from api.identity import TokenError
from db.storage.errors import ErrorCode, StorageError, access_denied, invalid_request, object_exists, too_large
from db.storage.signing import SignedUrlError

log = logging.getLogger(__name__)


def render(error: StorageError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    return response


def token_error(exc: TokenError) -> StorageError:
    """A missing or refused apikey/JWT, in storage's shape (upstream: InvalidJWT)."""
    if exc.kind in ("missing_apikey", "invalid_apikey"):
        return StorageError(401, ErrorCode.INVALID_JWT, exc.message, error="Unauthorized")
    return StorageError(401, ErrorCode.INVALID_JWT, exc.message)


def signed_url_error(exc: SignedUrlError) -> StorageError:
    if exc.reason == "expired":
        return StorageError(400, ErrorCode.EXPIRED_TOKEN, exc.message)
    return StorageError(400, ErrorCode.INVALID_SIGNATURE, exc.message)


ErrorFactory = Callable[[], StorageError]


def database_error(exc: psycopg.Error, *, on_duplicate: ErrorFactory | None = None,
                   on_foreign_key: ErrorFactory | None = None) -> StorageError:
    """Map what PostgreSQL refused (RLS, a unique key, a trigger's rule) to storage's codes."""
    state = exc.sqlstate or ""
    diag = exc.diag
    if state == "42501":
        if "row-level security" in (diag.message_primary or ""):
            return access_denied()
        return access_denied(f"permission denied: {diag.message_primary}")
    if state == "23505":
        return (on_duplicate or object_exists)()
    if state == "23503" and on_foreign_key is not None:
        return on_foreign_key()
    if state == "PT402":
        return StorageError(402, ErrorCode.INSUFFICIENT_CREDITS, diag.message_primary or "Insufficient credits")
    if state == "PT408":
        return StorageError(408, ErrorCode.UPLOAD_ABANDONED, diag.message_primary or "upload abandoned")
    if state.startswith("PT") and state[2:].isdigit():
        return StorageError(int(state[2:]), ErrorCode.INVALID_REQUEST, diag.message_primary or "refused")
    if state in ("22P02", "22001", "22003", "22021", "23502", "23514"):
        return invalid_request(diag.message_primary or "invalid value")
    if state == "57014":
        return StorageError(504, ErrorCode.DATABASE_UNAVAILABLE, "the database statement timed out")
    if state[:2] in ("08", "53", "57") or state in ("55P03", "40001", "40P01"):
        return StorageError(503, ErrorCode.DATABASE_UNAVAILABLE, "the database is unavailable; retry")
    raise exc


def storage_errors(on_duplicate: ErrorFactory | None = None,
                   on_foreign_key: ErrorFactory | None = None) -> Callable:
    """Decorate a view: PostgreSQL refusals and signed-URL/token errors become storage errors."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except psycopg.Error as exc:
                raise _from_psycopg(exc, on_duplicate, on_foreign_key) from exc
            except DBAPIError as exc:
                if isinstance(exc.orig, psycopg.Error):
                    raise _from_psycopg(exc.orig, on_duplicate, on_foreign_key) from exc
                if isinstance(exc, OperationalError):
                    raise StorageError(503, ErrorCode.DATABASE_UNAVAILABLE, "the database is unavailable") from exc
                raise
            except SignedUrlError as exc:
                raise signed_url_error(exc) from exc
            except TokenError as exc:
                raise token_error(exc) from exc
        return wrapper
    return decorate


def _from_psycopg(exc: psycopg.Error, on_duplicate, on_foreign_key) -> StorageError:
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return StorageError(503, ErrorCode.DATABASE_UNAVAILABLE, "the database is unavailable; retry")
    return database_error(exc, on_duplicate=on_duplicate, on_foreign_key=on_foreign_key)


def register(bp: Blueprint, upload_limit_for_413: Callable[[], int]) -> None:
    """Every error under /storage/v1 — ours, Flask's (404, 405, 413) and segbase's — in storage's shape."""

    @bp.errorhandler(StorageError)
    def _storage_error(exc: StorageError) -> Response:
        return render(exc)

    @bp.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            return render(too_large(upload_limit_for_413()))
        status = exc.code or 500
        code = {404: ErrorCode.NO_SUCH_KEY, 405: ErrorCode.INVALID_REQUEST}.get(status, ErrorCode.INVALID_REQUEST)
        return render(StorageError(status, code, exc.description or exc.name or "error",
                                   error=exc.name or str(code)))

    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        if exc.status == 413:
            return render(too_large(upload_limit_for_413()))
        code = ErrorCode.INTERNAL_ERROR if exc.status >= 500 else ErrorCode.INVALID_REQUEST
        return render(StorageError(exc.status, code, exc.message, error=exc.code))
