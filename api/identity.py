"""The one token verifier for every surface (data API, functions, realtime, auth) and the access-token minter.

A token is an HS256 JWT signed with JWT_SECRET. API keys (anon, service_role) carry no `aud` and count for their
role; user access tokens carry `aud=authenticated`, `sub` and `session_id`, and are valid only while their
session is alive. With AUTH_EXTERNAL_JWT_SECRET set, user tokens (role `authenticated`, never an API key) signed by
an external Supabase Auth are accepted too. Each surface maps `TokenError` to the error body its clients parse;
`gateway_error()` gives the Supabase gateway's answer for the two API-key kinds.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from api.errors import GatewayError
from db.auth import AUTH_ADMIN, live_sessions, session_is_live
from db.uow import Caller, unit_of_work
from schemas.settings import Settings

ALGORITHMS = ["HS256"]  # pinned: `alg: none` and algorithm confusion are refused by PyJWT
LEEWAY_SECONDS = 30  # PostgREST's clock-skew allowance
API_KEY_ROLES = frozenset({"anon", "service_role"})
# The only roles a token may ever become; `supabase_auth_admin` (db/auth.py) is deliberately not one of them.
TOKEN_ROLES = frozenset({"anon", "authenticated", "service_role"})
# How long a session lookup is trusted. Realtime re-checks sockets with it, so a logout or a refresh-token reuse
# reaches every surface of every process within this many seconds; the process that revokes forgets at once.
SESSION_CACHE_SECONDS = 2.0
SESSION_CACHE_MAX_ENTRIES = 50_000


class TokenError(Exception):
    """A token was refused. `kind` is one of missing_apikey | invalid_apikey | malformed | signature | expired |
    claims | session."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _decode(token: str, secret: str) -> dict[str, Any]:
    return jwt.decode(token, secret, algorithms=ALGORITHMS, leeway=LEEWAY_SECONDS,
                      options={"require": ["exp", "role"], "verify_aud": False})


def decode_token(token: str, settings: Settings) -> dict[str, Any]:
    """Verify signature, `exp` and the claims a role needs; return the claims. Does not check the session."""
    if not isinstance(token, str) or token.count(".") != 2:
        parts = token.count(".") + 1 if isinstance(token, str) else 0
        raise TokenError("malformed", f"Expected 3 parts in JWT; got {parts}")
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
    """The database identity for verified claims (from `decode_token`); never an internal role."""
    role = claims.get("role")
    if role not in TOKEN_ROLES:
        raise TokenError("claims", f"role {role!r} is not allowed")
    public_claims = {k: v for k, v in claims.items() if not k.startswith("_")}
    return Caller(role, public_claims)


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


# session id → (engine id, alive, trusted until [monotonic]). Session ids are random UUIDs, so one map serves
# every engine of the process; the engine id guards against a test process holding several databases.
_session_cache: dict[str, tuple[int, bool, float]] = {}
_session_cache_lock = threading.Lock()


def forget_session(session_id: str) -> None:
    """Drop a cached lookup (called by the process that revokes the session, so it notices at once)."""
    with _session_cache_lock:
        _session_cache.pop(str(session_id), None)


def session_is_alive(engine, session_id: str) -> bool:
    """True while the session exists and has not passed `not_after` (logout and refresh-token reuse delete it).

    A missing or non-UUID id is simply not alive. Answers are cached for SESSION_CACHE_SECONDS per process.
    """
    try:
        key = str(uuid.UUID(str(session_id)))
    except ValueError:
        return False
    now = time.monotonic()
    cached = _session_cache.get(key)
    if cached is not None and cached[0] == id(engine) and cached[2] > now:
        return cached[1]

    with unit_of_work(engine, AUTH_ADMIN) as uow:
        alive = session_is_live(uow=uow, session_id=key)
    with _session_cache_lock:
        if len(_session_cache) >= SESSION_CACHE_MAX_ENTRIES:
            _session_cache.clear()
        _session_cache[key] = (id(engine), alive, now + SESSION_CACHE_SECONDS)
    return alive


SESSIONS_PER_QUERY = 5000


def sessions_alive(engine, session_ids: list[str]) -> set[str]:
    """Of `session_ids`, those `session_is_alive` would call alive, asking the database once per
    SESSIONS_PER_QUERY sessions not in the cache (and caching the answers alike)."""
    now = time.monotonic()
    alive: set[str] = set()
    unknown: dict[str, str] = {}  # normalised UUID → the id as given
    for session_id in session_ids:
        try:
            key = str(uuid.UUID(str(session_id)))
        except ValueError:
            continue
        cached = _session_cache.get(key)
        if cached is not None and cached[0] == id(engine) and cached[2] > now:
            if cached[1]:
                alive.add(session_id)
        else:
            unknown[key] = session_id
    keys = list(unknown)
    for start in range(0, len(keys), SESSIONS_PER_QUERY):
        chunk = keys[start:start + SESSIONS_PER_QUERY]
        with unit_of_work(engine, AUTH_ADMIN) as uow:
            live = live_sessions(uow=uow, session_ids=chunk)
        with _session_cache_lock:
            if len(_session_cache) + len(chunk) >= SESSION_CACHE_MAX_ENTRIES:
                _session_cache.clear()
            for key in chunk:
                _session_cache[key] = (id(engine), key in live, now + SESSION_CACHE_SECONDS)
        alive.update(unknown[key] for key in chunk if key in live)
    return alive


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
    if claims.get("role") == "authenticated" and engine is not None:
        if not session_is_alive(engine, str(claims.get("session_id", ""))):
            raise TokenError("session", "Session from session_id claim in JWT does not exist")
    return caller_from_claims(claims)


def credentials_from_request(request) -> tuple[str | None, str | None]:
    """(apikey, bearer) as Supabase's gateway reads them: `apikey` header (any case) or `?apikey=`, and
    `Authorization: Bearer <token>`."""
    apikey = request.headers.get("apikey") or request.args.get("apikey") or None
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return apikey, bearer


GATEWAY_HINTS = {
    "missing_apikey": "No `apikey` request header or url param was found.",
    "invalid_apikey": "Double check your Supabase `anon` or `service_role` API key.",
}


def gateway_error(exc: TokenError) -> GatewayError:
    """What Supabase's gateway answers for a missing or invalid API key (401 `{message, hint}`)."""
    return GatewayError(exc.message, GATEWAY_HINTS.get(exc.kind, ""))
