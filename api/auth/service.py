"""What each /auth/v1 operation does, GoTrue's semantics, independent of Flask.

Transactions are short and never span a password hash: a lookup commits, the hash runs on the pool, then one
transaction writes the user, the session and the refresh token together (the user's profile comes from the
`on_auth_user_created` trigger in the same transaction).
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine

from api.auth.errors import (
    AuthError,
    ErrorCode,
    OAuthError,
    OAuthErrorCode,
    invalid_credentials,
    validation_failed,
)
from api.auth.passwords import Lane, PasswordHasher
from api.auth.refresh_tokens import new_refresh_token, seal_child, unseal_child
from api.identity import AccessToken, forget_session, mint_access_token
from db import auth as auth_db
from db.uow import UnitOfWork, unit_of_work
from schemas.settings import Settings

# GoTrue's email check (internal/api/mail.go): a permissive RFC 5322 local part and DNS-label domain.
EMAIL_PATTERN = re.compile(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
                           r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
EMAIL_MAX_LENGTH = 255
LOGOUT_SCOPES = ("global", "local", "others")


@dataclass
class AuthContext:
    settings: Settings
    engine: Engine
    hasher: PasswordHasher


@dataclass
class IssuedSession:
    access: AccessToken
    refresh_token: str
    user: dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def normalize_email(email: str) -> str:
    """GoTrue lowercases and trims emails before storing or looking them up."""
    email = email.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not EMAIL_PATTERN.match(email):
        raise validation_failed("Unable to validate email address: invalid format")
    return email


def check_password_strength(password: str, settings: Settings) -> None:
    minimum = settings.auth_password_min_length
    if len(password) < minimum:
        raise AuthError(f"Password should be at least {minimum} characters.", status=422, code=ErrorCode.WEAK_PASSWORD,
                        weak_password={"reasons": ["length"]})


def _start_session(uow, settings: Settings, user: dict[str, Any], now: datetime, user_agent: str | None,
                   ip: str | None) -> IssuedSession:
    session_id = auth_db.create_session(uow=uow, user_id=user["id"], now=now, user_agent=user_agent, ip=ip)
    refresh_token = new_refresh_token()
    auth_db.insert_refresh_token(uow=uow, token=refresh_token, session_id=session_id, user_id=user["id"], now=now)
    access = mint_access_token(settings, user=user, session_id=session_id, now=int(now.timestamp()))
    return IssuedSession(access, refresh_token, user)


def is_banned(user: dict[str, Any], now: datetime) -> bool:
    banned_until = user.get("banned_until")
    return banned_until is not None and banned_until > now


def end_session(uow: UnitOfWork, session_id: str) -> None:
    """Revoke one session (local logout, a replayed refresh token); this process forgets it once committed."""
    auth_db.delete_session(uow=uow, session_id=session_id)
    uow.on_commit(lambda: forget_session(session_id))


def end_user_sessions(uow: UnitOfWork, user_id: str, *, except_session_id: str | None = None,
                      keep_rows: bool = False) -> list[str]:
    """End a user's sessions in `uow` (db.auth.end_user_sessions); this process forgets them once committed.

    Every revocation goes through here: logout, a password change, and the admin API's ban and delete. Other
    processes see it through the session check (`api.identity.session_is_alive`, cached at most
    SESSION_CACHE_SECONDS), which the realtime hub also sweeps open sockets with.
    """
    ended = auth_db.end_user_sessions(uow=uow, user_id=user_id, except_session_id=except_session_id,
                                      keep_rows=keep_rows)

    def forget() -> None:
        for session_id in ended:
            forget_session(session_id)

    uow.on_commit(forget)
    return ended


# --- operations ------------------------------------------------------------------------------------------------

def sign_up(ctx: AuthContext, *, email: str, password: str, data: dict[str, Any], user_agent: str | None = None,
            ip: str | None = None, confirm: Callable[[UnitOfWork, dict[str, Any]], None] | None = None,
            ) -> tuple[dict[str, Any], IssuedSession | None]:
    """Create an email user; with autoconfirm (the default) also a session, else the bare unconfirmed user, and
    `confirm(uow, user)` writes its confirmation mail in the same transaction (api/auth/email_flows.py)."""
    settings = ctx.settings
    email = normalize_email(email)
    check_password_strength(password, settings)
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        existing = auth_db.find_user_by_email(uow=uow, email=email)
    if existing is not None:
        return _existing_sign_up(settings, existing)
    password_hash = ctx.hasher.hash(password)
    now = utcnow()
    try:
        with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
            user = auth_db.insert_user(uow=uow, email=email, password_hash=password_hash, user_metadata=data,
                                       confirmed=settings.auth_mailer_autoconfirm, now=now)
            if not settings.auth_mailer_autoconfirm:
                if confirm is not None:
                    confirm(uow, user)
                return user, None
            user = auth_db.record_sign_in(uow=uow, user_id=user["id"], now=now) or user
            return user, _start_session(uow, settings, user, now, user_agent, ip)
    except auth_db.EmailTakenError:
        with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
            existing = auth_db.find_user_by_email(uow=uow, email=email)
        return _existing_sign_up(settings, existing or {})


def _existing_sign_up(settings: Settings, existing: dict[str, Any]) -> tuple[dict[str, Any], None]:
    if settings.auth_mailer_autoconfirm:
        raise AuthError("User already registered", status=422, code=ErrorCode.USER_ALREADY_EXISTS)
    if existing.get("email_confirmed_at") is None:
        return existing, None
    # GoTrue with confirmations on answers as for a new user, so sign-up does not reveal who has an account.
    now = utcnow()
    return {"id": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated", "email": existing["email"],
            "phone": None, "confirmation_sent_at": now, "raw_app_meta_data": {"provider": "email",
            "providers": ["email"]}, "raw_user_meta_data": {}, "created_at": now, "updated_at": now,
            "is_anonymous": False, "identities": []}, None


def sign_in_with_password(ctx: AuthContext, *, email: str, password: str, user_agent: str | None = None,
                          ip: str | None = None) -> IssuedSession:
    settings = ctx.settings
    try:
        email = normalize_email(email)
    except AuthError:
        email = ""  # not an address anyone has: answered exactly like a wrong password
    user = None
    if email:
        with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
            user = auth_db.find_user_by_email(uow=uow, email=email)
    if user is None:
        ctx.hasher.verify_dummy(password)
        raise invalid_credentials()
    if not ctx.hasher.verify(user.get("encrypted_password") or "", password):
        raise invalid_credentials()
    if user.get("email_confirmed_at") is None:
        raise AuthError("Email not confirmed", status=400, code=ErrorCode.EMAIL_NOT_CONFIRMED)
    now = utcnow()
    if is_banned(user, now):
        raise AuthError("User is banned", status=400, code=ErrorCode.USER_BANNED)
    new_hash = ctx.hasher.hash(password) if ctx.hasher.needs_rehash(user["encrypted_password"]) else None
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        if new_hash is not None:
            auth_db.update_user(uow=uow, user_id=user["id"], now=now, password_hash=new_hash)
        user = auth_db.record_sign_in(uow=uow, user_id=user["id"], now=now) or user
        return _start_session(uow, settings, user, now, user_agent, ip)


def refresh_session(ctx: AuthContext, *, refresh_token: str) -> IssuedSession:
    """Rotate a refresh token, with GoTrue's reuse rules.

    A revoked token is still accepted when it is the parent of the session's active token (the client lost the
    previous answer: it gets that same active token back) or within AUTH_REFRESH_REUSE_INTERVAL_SECONDS of its
    revocation (it gets a new child). Any other reuse means the token leaked: the session is revoked — committed
    before the error is raised — and every access token of that session stops working.
    """
    if not refresh_token:
        raise OAuthError("refresh_token required", status=400, code=OAuthErrorCode.INVALID_REQUEST)
    settings = ctx.settings
    now = utcnow()
    token_hash = auth_db.hash_refresh_token(refresh_token)
    reused_session: str | None = None
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        row = auth_db.find_refresh_token(uow=uow, token_hash=token_hash)
        user = auth_db.find_user_by_id(uow=uow, user_id=str(row["user_id"])) if row is not None else None
        if row is None or user is None or user.get("deleted_at") is not None:
            raise AuthError("Invalid Refresh Token: Refresh Token Not Found", status=400,
                            code=ErrorCode.REFRESH_TOKEN_NOT_FOUND)
        if is_banned(user, now):  # before the session: a ban ends sessions, and this says why
            raise AuthError("Invalid Refresh Token: User Banned", status=400, code=ErrorCode.USER_BANNED)
        session_id = str(row["session_id"]) if row["session_id"] else None
        session = auth_db.find_session(uow=uow, session_id=session_id, for_update=True) if session_id else None
        if session is None:
            raise AuthError("Invalid Refresh Token: No Valid Session Found", status=400,
                            code=ErrorCode.SESSION_NOT_FOUND)
        if session["expired"]:
            raise AuthError("Invalid Refresh Token: Session Expired", status=400, code=ErrorCode.SESSION_EXPIRED)
        issued: str | None = None
        if row["revoked"]:
            active = auth_db.find_active_refresh_token(uow=uow, session_id=session_id)
            if active is not None and active["parent"] == token_hash:
                issued = unseal_child(refresh_token, active["segbase_sealed_token"], active["token"])
            if issued is None:
                reuse_until = row["updated_at"] + timedelta(seconds=settings.auth_refresh_reuse_interval_seconds)
                if now > reuse_until:
                    end_session(uow, session_id)
                    reused_session = session_id
        if reused_session is None:
            if issued is None:
                if not row["revoked"]:
                    auth_db.revoke_refresh_token(uow=uow, token_id=row["id"], now=now)
                issued = new_refresh_token()
                auth_db.insert_refresh_token(uow=uow, token=issued, session_id=session_id, user_id=user["id"],
                                             now=now, parent_hash=token_hash,
                                             sealed=seal_child(refresh_token, issued))
            auth_db.touch_session(uow=uow, session_id=session_id, now=now)
    if reused_session is not None:
        raise AuthError("Invalid Refresh Token: Already Used", status=400, code=ErrorCode.REFRESH_TOKEN_ALREADY_USED)
    access = mint_access_token(settings, user=user, session_id=session_id, now=int(now.timestamp()))
    return IssuedSession(access, issued, user)


def load_user(ctx: AuthContext, claims: dict[str, Any]) -> dict[str, Any]:
    """The user behind verified claims, checking (uncached) that the session is alive and the user exists."""
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        return _require_session_user(uow, claims)


def _require_session_user(uow, claims: dict[str, Any]) -> dict[str, Any]:
    session_id = str(claims.get("session_id") or "")
    try:
        uuid.UUID(session_id)
        alive = auth_db.session_is_live(uow=uow, session_id=session_id)
    except ValueError:
        alive = False
    if not alive:
        raise AuthError("Session from session_id claim in JWT does not exist", status=403, code=ErrorCode.SESSION_NOT_FOUND)
    user = auth_db.find_user_by_id(uow=uow, user_id=str(claims["sub"]))
    if user is None:
        raise AuthError("User from sub claim in JWT does not exist", status=403, code=ErrorCode.USER_NOT_FOUND)
    return user


def update_user(ctx: AuthContext, claims: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """PUT /user: `data` merges into user_metadata (null removes a key), `password` changes the password and
    signs out the user's other sessions, as GoTrue does."""
    settings = ctx.settings
    if body.get("app_metadata") is not None:
        raise AuthError("Updating app_metadata requires admin privileges", status=403, code=ErrorCode.NOT_ADMIN)
    user = load_user(ctx, claims)
    email = body.get("email")
    if email is not None and normalize_email(email) != (user.get("email") or ""):
        raise validation_failed("Changing the email address is not supported", status=422)
    if body.get("phone") not in (None, "", user.get("phone")):
        raise validation_failed("Changing the phone number is not supported", status=422)
    password = body.get("password")
    new_hash = None
    if password is not None:
        check_password_strength(password, settings)
        if ctx.hasher.verify(user.get("encrypted_password") or "", password, lane=Lane.ACCOUNT_CHANGE):
            raise AuthError("New password should be different from the old password.", status=422,
                            code=ErrorCode.SAME_PASSWORD)
        new_hash = ctx.hasher.hash(password, lane=Lane.ACCOUNT_CHANGE)
    metadata = None
    if body.get("data") is not None:
        metadata = dict(user.get("raw_user_meta_data") or {})
        for key, value in body["data"].items():
            if value is None:
                metadata.pop(key, None)
            else:
                metadata[key] = value
    if new_hash is None and metadata is None:
        return user
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        _require_session_user(uow, claims)
        updated = auth_db.update_user(uow=uow, user_id=user["id"], now=utcnow(), password_hash=new_hash,
                                      user_metadata=metadata)
        if new_hash is not None:
            end_user_sessions(uow, user["id"], except_session_id=str(claims["session_id"]))
    return updated or user


def logout(ctx: AuthContext, claims: dict[str, Any], scope: str) -> None:
    if scope not in LOGOUT_SCOPES:
        raise validation_failed(f'Unsupported logout scope "{scope}"')
    session_id = str(claims["session_id"])
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        user = _require_session_user(uow, claims)
        if scope == "local":
            end_session(uow, session_id)
        else:
            end_user_sessions(uow, user["id"], except_session_id=session_id if scope == "others" else None)
