"""The one token verifier for every surface (data API, functions, realtime, auth) and the access-token minter.

A token is an HS256 JWT signed with JWT_SECRET. API keys (anon, service_role) carry no `aud` and count for their
role; user access tokens carry `aud=authenticated`, `sub` and `session_id`, and are valid only while their
session is alive. Each surface maps `TokenError` to the error body its clients parse.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from db.uow import Caller
from schemas.settings import Settings

ALGORITHMS = ["HS256"]  # pinned: `alg: none` and algorithm confusion are refused by PyJWT
LEEWAY_SECONDS = 30
API_KEY_ROLES = frozenset({"anon", "service_role"})


class TokenError(Exception):
    """A token was refused. `kind` is one of malformed | signature | expired | claims | session."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _decode(token: str, secret: str) -> dict[str, Any]:
    return jwt.decode(token, secret, algorithms=ALGORITHMS, leeway=LEEWAY_SECONDS,
                      options={"require": ["exp", "role"], "verify_aud": False})


def decode_token(token: str, settings: Settings) -> dict[str, Any]:
    """Verify signature, `exp` and the claims a role needs; return the claims. Does not check the session."""
    if token.count(".") != 2:
        raise TokenError("malformed", f"Expected 3 parts in JWT; got {token.count('.') + 1}")
    external = settings.auth_external_jwt_secret
    try:
        try:
            claims = _decode(token, settings.jwt_secret.get_secret_value())
            from_external = False
        except jwt.InvalidSignatureError:
            if external is None:
                raise
            claims = _decode(token, external.get_secret_value())
            from_external = True
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("expired", "JWT expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError("claims", f"Fields `role` and `exp` are required in JWT ({exc.claim} missing)") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("signature", "JWT cryptographic operation failed") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError("malformed", f"invalid JWT: {exc}") from exc

    role = claims.get("role")
    if "aud" not in claims and not from_external and role in API_KEY_ROLES:
        return claims  # an API key
    if role != "authenticated":
        raise TokenError("claims", f"role {role!r} is not allowed for a user token")
    aud = claims.get("aud")
    if aud != "authenticated" and not (isinstance(aud, list) and "authenticated" in aud):
        raise TokenError("claims", "JWT not in audience")
    try:
        uuid.UUID(str(claims.get("sub")))
    except ValueError as exc:
        raise TokenError("claims", "invalid claim: missing sub claim") from exc
    claims["_external"] = from_external
    return claims


def caller_from_claims(claims: dict[str, Any]) -> Caller:
    public_claims = {k: v for k, v in claims.items() if not k.startswith("_")}
    return Caller(claims["role"], public_claims)


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int
    expires_at: int


def mint_access_token(settings: Settings, *, user: dict[str, Any], session_id: str,
                      amr_method: str = "password", now: int | None = None) -> AccessToken:
    """Sign a Supabase-shaped user access token (GoTrue's claims, in its order)."""
    issued = int(now if now is not None else time.time())
    expires_at = issued + settings.jwt_expiry_seconds
    claims = {
        "iss": settings.jwt_issuer,
        "sub": str(user["id"]),
        "aud": user.get("aud") or "authenticated",
        "exp": expires_at,
        "iat": issued,
        "email": user.get("email") or "",
        "phone": user.get("phone") or "",
        "app_metadata": user.get("raw_app_meta_data") or {},
        "user_metadata": user.get("raw_user_meta_data") or {},
        "role": user.get("role") or "authenticated",
        "aal": "aal1",
        "amr": [{"method": amr_method, "timestamp": issued}],
        "session_id": str(session_id),
        "is_anonymous": bool(user.get("is_anonymous", False)),
    }
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    return AccessToken(token=token, expires_in=settings.jwt_expiry_seconds, expires_at=expires_at)


def session_is_alive(engine, session_id: str) -> bool:
    """True while the user's session exists (logout and refresh-token reuse delete or revoke it).

    The Auth issue owns this check (and may cache it briefly); until then every user token's session is looked
    up in `auth.sessions` as `supabase_auth_admin`.
    """
    from sqlalchemy import text

    with engine.connect() as conn:
        with conn.begin():
            conn.execute(text("select set_config('role', 'supabase_auth_admin', true)"))
            row = conn.execute(text("select 1 from auth.sessions where id = cast(:id as uuid) "
                                    "and (not_after is null or not_after > now())"), {"id": session_id}).first()
    return row is not None


def resolve_caller(*, apikey: str | None, bearer: str | None, settings: Settings, engine=None) -> Caller:
    """Who a request acts as, as Supabase's gateway + PostgREST decide it.

    `apikey` (header or `?apikey=`) must be a valid anon or service_role key; the Bearer token, when present,
    decides the role (a user token → `authenticated`, checked against its live session when `engine` is given);
    without one the apikey's role applies.
    """
    if not apikey:
        raise TokenError("missing_apikey", "No API key found in request")
    try:
        key_claims = decode_token(apikey, settings)
    except TokenError as exc:
        raise TokenError("invalid_apikey", "Invalid API key") from exc
    if key_claims.get("role") not in API_KEY_ROLES or "aud" in key_claims:
        raise TokenError("invalid_apikey", "Invalid API key")
    claims = decode_token(bearer, settings) if bearer else key_claims
    if claims.get("role") == "authenticated" and engine is not None and not claims.get("_external"):
        if not session_is_alive(engine, str(claims.get("session_id", ""))):
            raise TokenError("session", "Session from session_id claim in JWT does not exist")
    return caller_from_claims(claims)
