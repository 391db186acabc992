"""PostgREST's error shape `{code, message, details, hint}` and its mapping of PostgreSQL errors to HTTP statuses
(PostgREST's Error.hs), plus segbase's convention for rules raised by triggers.

Trigger convention (shared by every engineer): `raise exception using errcode = 'PTxyz', message = <text>,
hint = <snake_case code>` answers HTTP xyz with `{"code": <hint>, "message": <text>, "details": <detail>,
"hint": null}` — e.g. the pipeline's reservation trigger raises PT402 / `insufficient_credits`.
"""
from __future__ import annotations

import re
from typing import Any

import psycopg

from api.errors import ApiError
from api.identity import TokenError, gateway_error
from db.errors import is_unavailable

# Contention rather than a bad request (a lock wait bounded by lock_timeout, a serialization failure or deadlock, an
# admin shutdown): 503 + Retry-After, so a retry is the obvious move (PostgREST itself answers 500 for these).
SNAKE_CODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class PostgrestError(ApiError):
    def __init__(self, status: int, code: str | None, message: str, *, details: Any = None, hint: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, status=status, code=code or str(status))
        self.details = details
        self.hint = hint
        self._headers = headers or {}

    def body(self) -> Any:
        return {"code": self.code, "message": self.message, "details": self.details, "hint": self.hint}

    def headers(self) -> dict[str, str]:
        return {"Proxy-Status": f"PostgREST; error={self.code}", **self._headers}


def bad_request(message: str, details: Any = None, hint: Any = None) -> PostgrestError:
    return PostgrestError(400, "PGRST100", message, details=details, hint=hint)


def token_error(exc: TokenError) -> ApiError:
    """Map `api.identity.TokenError` kinds to what the gateway / PostgREST answer."""
    kind, message = exc.kind, exc.message
    if kind in ("missing_apikey", "invalid_apikey"):
        return gateway_error(exc)
    code = "PGRST301" if kind in ("malformed", "signature") else "PGRST303"
    if kind == "session":
        message = f"{message}; sign in again"
    return PostgrestError(401, code, message, headers={
        "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'})


def _status_for(sqlstate: str, role: str) -> int:
    if sqlstate == "42501":
        return 401 if role == "anon" else 403
    exact = {"23503": 409, "23505": 409, "25006": 405, "42883": 404, "42P01": 404, "42P17": 500,
             "P0001": 400, "53400": 500, "57014": 504}
    if sqlstate in exact:
        return exact[sqlstate]
    prefix = {"08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500, "38": 500, "39": 500,
              "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500, "57": 500, "58": 500, "F0": 500,
              "HV": 500, "P0": 500, "XX": 500}
    return prefix.get(sqlstate[:2], 400)


def database_error(exc: psycopg.Error, role: str) -> PostgrestError:
    """A PostgreSQL error raised while serving the request, in PostgREST's shape and status."""
    diag = exc.diag
    sqlstate = exc.sqlstate or "XX000"
    message = diag.message_primary or str(exc)
    details, hint = diag.message_detail, diag.message_hint
    custom = re.fullmatch(r"PT([1-5]\d\d)", sqlstate)
    if custom:
        status = int(custom.group(1))
        code = hint if hint and SNAKE_CODE.match(hint) else sqlstate
        return PostgrestError(status, code, message, details=details, hint=None)
    if is_unavailable(exc):
        return PostgrestError(503, sqlstate, message, details=details, hint=hint, headers={"Retry-After": "1"})
    return PostgrestError(_status_for(sqlstate, role), sqlstate, message, details=details, hint=hint)
