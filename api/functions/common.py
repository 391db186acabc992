"""What the functions share: the edge runtime's verify_jwt answers, the user behind a Bearer token, and the 503
for an unreachable database."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Request

from api.errors import ApiError, ServiceUnavailableError
from api.identity import TokenError, caller_from_claims, decode_token, session_is_alive
from api.services import services
from db.errors import CONNECTION_ERRORS
from db.uow import Caller

DATABASE_RETRY_AFTER_SECONDS = 5


class EdgeAuthError(ApiError):
    """401 in the body Supabase's edge runtime sends when verify_jwt refuses a request (supabase/cli `internal/functions/serve/templates/main.ts`)."""

    status, code = 401, "unauthorized"

    def body(self) -> Any:
        return {"msg": self.message}


def verified_claims(request: Request) -> dict[str, Any]:
    """The Bearer token's claims, checked as the edge runtime's verify_jwt does (supabase/cli `internal/functions/serve/templates/main.ts`)."""
    authorization = request.headers.get("Authorization")
    if not authorization:
        raise EdgeAuthError("Error: Missing authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme != "Bearer" or not token.strip():
        raise EdgeAuthError("Error: Auth header is not 'Bearer {token}'")
    try:
        return decode_token(token.strip(), services().settings)
    except TokenError as exc:
        raise EdgeAuthError("Invalid JWT") from exc


def require_user(request: Request) -> Caller:
    """The signed-in user of a function call, checked as verify_jwt does (plus a live session)."""
    svc = services()
    claims = verified_claims(request)
    if claims.get("role") != "authenticated":
        raise EdgeAuthError("Error: this function needs a signed-in user's access token, not an API key")
    with database_or_503():
        alive = session_is_alive(svc.engine, str(claims.get("session_id", "")))
    if not alive:
        raise EdgeAuthError("Invalid JWT")
    return caller_from_claims(claims)


@contextmanager
def database_or_503() -> Iterator[None]:
    """Turn an unreachable PostgreSQL into 503 + Retry-After (a client retries; nothing was acknowledged)."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise ServiceUnavailableError("the database is unavailable; retry later",
                                      retry_after=DATABASE_RETRY_AFTER_SECONDS) from exc
