"""Console sign-in state: the session cookie, CSRF tokens, and the operator behind each request.

A console sign-in is an `auth.sessions` row (sign-out, a ban and "sign out everywhere" end it; `not_after` bounds
it to CONSOLE_SESSION_HOURS). The cookie holds that session's id, signed with a key derived from JWT_SECRET. Every
request re-reads the session, the operator role and the ban state in one query (db/console.py::session_user).

Cookie: `HttpOnly`, `SameSite=Strict`; in ENV=prod also `Secure` with the `__Host-` prefix, which browsers accept
only with `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2) — so the console cookie is `Path=/console` in
development and `Path=/` (host-bound) in production; docs/CONSOLE.md explains why the console deserves an origin of
its own (CONSOLE_EXTERNAL_URL) either way.

CSRF: every form carries a token. Signed-in forms carry HMAC(key, session id); the sign-in form, which has no
session yet, uses a double-submit cookie (a random value in a cookie and in the form, compared on POST).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import Response, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from schemas.settings import Settings

SESSION_SALT = "segbase.console.session"
CSRF_FIELD = "csrf_token"
PKCE_COOKIE_SECONDS = 600  # the flow state lives 300 s; the cookie a little longer


@dataclass(frozen=True)
class CookieNames:
    session: str
    login: str
    path: str
    secure: bool


def cookie_names(settings: Settings) -> CookieNames:
    if settings.env == "prod":
        return CookieNames("__Host-segbase-console", "__Host-segbase-console-login", "/", True)
    return CookieNames("segbase-console", "segbase-console-login", "/console", False)


def _key(settings: Settings, purpose: str) -> bytes:
    """A key of its own for each purpose, derived from JWT_SECRET (rotating the secret ends console sessions)."""
    return hmac.new(settings.jwt_secret.get_secret_value().encode(), f"segbase-console:{purpose}".encode(),
                    hashlib.sha256).digest()


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_key(settings, "cookie"), salt=SESSION_SALT)


def session_id_from_cookie(settings: Settings) -> str | None:
    """The session id in a valid, unexpired signed cookie, else None."""
    value = request.cookies.get(cookie_names(settings).session)
    if not value:
        return None
    try:
        data = _serializer(settings).loads(value, max_age=settings.console_session_hours * 3600)
    except BadSignature:
        return None
    return data.get("sid") if isinstance(data, dict) and isinstance(data.get("sid"), str) else None


def _set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int | None) -> None:
    names = cookie_names(settings)
    response.set_cookie(name, value, max_age=max_age, path=names.path, secure=names.secure, httponly=True,
                        samesite="Strict")


def set_session_cookie(response: Response, settings: Settings, session_id: str) -> None:
    value = _serializer(settings).dumps({"sid": session_id})
    _set_cookie(response, settings, cookie_names(settings).session, value, settings.console_session_hours * 3600)


def clear_session_cookie(response: Response, settings: Settings) -> None:
    names = cookie_names(settings)
    response.delete_cookie(names.session, path=names.path, secure=names.secure, httponly=True, samesite="Strict")


def csrf_token(settings: Settings, session_id: str) -> str:
    return hmac.new(_key(settings, "csrf"), session_id.encode(), hashlib.sha256).hexdigest()


def csrf_ok(settings: Settings, session_id: str) -> bool:
    sent = request.form.get(CSRF_FIELD, "")
    return bool(sent) and hmac.compare_digest(sent, csrf_token(settings, session_id))


def login_csrf_token(settings: Settings) -> tuple[str, bool]:
    """The sign-in form's token: the one in the browser's login cookie, or a new one (True: set the cookie)."""
    existing = request.cookies.get(cookie_names(settings).login, "")
    if len(existing) == 43:
        return existing, False
    return secrets.token_urlsafe(32), True


def set_login_cookie(response: Response, settings: Settings, token: str) -> None:
    _set_cookie(response, settings, cookie_names(settings).login, token, 3600)


def login_csrf_ok(settings: Settings) -> bool:
    cookie = request.cookies.get(cookie_names(settings).login, "")
    sent = request.form.get(CSRF_FIELD, "")
    return bool(cookie) and bool(sent) and hmac.compare_digest(cookie, sent)


def new_pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636 §4.1-4.2) for the console's Google sign-in."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _pkce_cookie(settings: Settings) -> str:
    return cookie_names(settings).login + "-pkce"


def set_pkce_cookie(response: Response, settings: Settings, verifier: str) -> None:
    """The verifier, for the return from Google. SameSite=Lax, not Strict: the return is a top-level navigation
    that a redirect chain from Google started, on which browsers withhold Strict cookies."""
    names = cookie_names(settings)
    response.set_cookie(_pkce_cookie(settings), verifier, max_age=PKCE_COOKIE_SECONDS, path=names.path,
                        secure=names.secure, httponly=True, samesite="Lax")


def pkce_verifier(settings: Settings) -> str | None:
    value = request.cookies.get(_pkce_cookie(settings), "")
    return value if 43 <= len(value) <= 128 else None


def clear_pkce_cookie(response: Response, settings: Settings) -> None:
    names = cookie_names(settings)
    response.delete_cookie(_pkce_cookie(settings), path=names.path, secure=names.secure, httponly=True,
                           samesite="Lax")
