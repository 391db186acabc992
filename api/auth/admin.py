"""GoTrue's admin API operations (supabase/auth `internal/api/admin.go`), independent of Flask.

Callers are tokens whose `role` is one of AUTH_ADMIN_ROLES (GoTrue's JWT_ADMIN_ROLES: `service_role` and
`supabase_admin` by default), verified with JWT_SECRET only: a token signed with AUTH_EXTERNAL_JWT_SECRET never
administers. Banning and deleting end the user's sessions through `service.end_user_sessions`, and
`db.auth.session_is_live` refuses a banned or deleted user's sessions on every surface (HTTP and realtime sockets)
whichever path wrote the ban.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt

from api.auth.errors import AuthError, ErrorCode, validation_failed
from api.auth.passwords import Lane
from api.auth.service import (
    AuthContext,
    check_password_strength,
    end_user_sessions,
    normalize_email,
    utcnow,
)
from db import auth as auth_db
from db import auth_admin
from db.uow import unit_of_work
from schemas.settings import Settings

DEFAULT_PER_PAGE = 50  # GoTrue's defaultPerPage
MAX_PER_PAGE = 1000
GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
ADMIN_USER_FIELDS = ("email", "password", "email_confirm", "user_metadata", "app_metadata", "ban_duration", "role")


def signup_disabled() -> AuthError:
    """AUTH_DISABLE_SIGNUP's answer to a new sign-up (GoTrue's DISABLE_SIGNUP)."""
    return AuthError("Signups not allowed for this instance", status=422, code=ErrorCode.SIGNUP_DISABLED)


def email_exists() -> AuthError:
    return AuthError("A user with this email address has already been registered", status=422,
                     code=ErrorCode.EMAIL_EXISTS)


def require_admin(bearer: str | None, settings: Settings) -> dict[str, Any]:
    """The Bearer token's claims when its role is an admin role; GoTrue's 401/403 otherwise."""
    if not bearer:
        raise AuthError("This endpoint requires a valid Bearer token", status=401, code=ErrorCode.NO_AUTHORIZATION)
    try:
        # As GoTrue: signature and (when present) expiry; the Supabase CLI's own admin token has no `exp`.
        claims = jwt.decode(bearer, settings.jwt_secret.get_secret_value(), algorithms=["HS256"],
                            options={"verify_aud": False})
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid JWT: unable to parse or verify signature, {exc}", status=403,
                        code=ErrorCode.BAD_JWT) from exc
    if claims.get("role") not in settings.auth_admin_roles:
        raise AuthError("User not allowed", status=403, code=ErrorCode.NOT_ADMIN)
    return claims


def parse_ban_duration(value: str) -> timedelta:
    """A Go duration (`24h`, `1h30m`, `876000h`) as GoTrue's ban_duration takes it; `none` unbans (zero)."""
    if value == "none":
        return timedelta(0)
    text = value[1:] if value[:1] in "+-" else value
    if text == "0":
        return timedelta(0)
    seconds = 0.0
    position = 0
    for match in GO_DURATION.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * GO_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise validation_failed(f'invalid format for ban duration: time: invalid duration "{value}"')
    return timedelta(seconds=-seconds if value.startswith("-") else seconds)


def _user_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError as exc:
        raise AuthError("user_id must be an UUID", status=404, code=ErrorCode.VALIDATION_FAILED) from exc


def _not_found() -> AuthError:
    return AuthError("User not found", status=404, code=ErrorCode.USER_NOT_FOUND)


def _merge(current: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's metadata update: keys merge, a null value removes its key."""
    merged = dict(current)
    for key, value in updates.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def page_params(page: str | None, per_page: str | None) -> tuple[int, int]:
    try:
        page_number = int(page) if page else 1
        size = int(per_page) if per_page else DEFAULT_PER_PAGE
    except ValueError as exc:
        raise validation_failed(f"Bad Pagination Parameters: {exc}") from exc
    if page_number < 1 or size < 1:
        raise validation_failed("Bad Pagination Parameters: page and per_page must be positive")
    return page_number, min(size, MAX_PER_PAGE)


def list_users(ctx: AuthContext, page: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        return auth_admin.list_users(uow=uow, page=page, per_page=per_page)


def get_user(ctx: AuthContext, raw_id: str) -> dict[str, Any]:
    user_id = _user_id(raw_id)
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        user = auth_db.find_user_by_id(uow=uow, user_id=user_id)
    if user is None:
        raise _not_found()
    return user


def _ban_fields(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    if not body.get("ban_duration"):
        return {}
    duration = parse_ban_duration(str(body["ban_duration"]))
    return {"banned_until": None if duration == timedelta(0) else now + duration}


def create_user(ctx: AuthContext, body: dict[str, Any]) -> dict[str, Any]:
    """POST /admin/users: works whatever AUTH_DISABLE_SIGNUP says, as GoTrue's does."""
    if not body.get("email"):
        if body.get("phone"):
            raise AuthError("Phone signups are disabled", status=400, code=ErrorCode.PHONE_PROVIDER_DISABLED)
        raise validation_failed("Cannot create a user without either an email or phone")
    email = normalize_email(str(body["email"]))
    user_id = None
    if body.get("id"):
        try:
            parsed = uuid.UUID(str(body["id"]))
        except ValueError as exc:
            raise validation_failed("ID must conform to the uuid v4 format") from exc
        if parsed.int == 0:
            raise validation_failed("ID cannot be a nil uuid")
        user_id = str(parsed)
    password = body.get("password")
    password_hash = None
    if password:
        check_password_strength(password, ctx.settings)
    now = utcnow()
    ban = _ban_fields(body, now)
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        exists = auth_db.find_user_by_email(uow=uow, email=email) is not None
    if exists:
        raise email_exists()
    if password:
        password_hash = ctx.hasher.hash(password, lane=Lane.ACCOUNT_CHANGE)
    try:
        with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
            user = auth_db.insert_user(uow=uow, email=email, password_hash=password_hash,  # type: ignore[arg-type]
                                       user_metadata=body.get("user_metadata") or {},
                                       confirmed=bool(body.get("email_confirm")), now=now, user_id=user_id)
            fields: dict[str, Any] = {"confirmation_sent_at": None, **ban}
            if body.get("app_metadata"):
                fields["raw_app_meta_data"] = _merge(user["raw_app_meta_data"], body["app_metadata"])
            if body.get("role"):
                fields["role"] = str(body["role"])
            return auth_admin.update_user_fields(uow=uow, user_id=user["id"], now=now, fields=fields) or user
    except auth_db.EmailTakenError as exc:
        raise email_exists() from exc


def update_user(ctx: AuthContext, raw_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """PUT /admin/users/{id}: email, password, email_confirm, metadata (merged), role, ban_duration."""
    user_id = _user_id(raw_id)
    now = utcnow()
    fields: dict[str, Any] = _ban_fields(body, now)
    email = normalize_email(str(body["email"])) if body.get("email") else None
    password = body.get("password")
    if password is not None:
        check_password_strength(password, ctx.settings)
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        user = auth_db.find_user_by_id(uow=uow, user_id=user_id)
        taken = email is not None and email != user.get("email") and \
            auth_db.find_user_by_email(uow=uow, email=email) is not None if user else False
    if user is None:
        raise _not_found()
    if taken:
        raise email_exists()
    if password is not None:
        fields["encrypted_password"] = ctx.hasher.hash(password, lane=Lane.ACCOUNT_CHANGE)
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        current = auth_db.find_user_by_id(uow=uow, user_id=user_id, for_update=True)
        if current is None:
            raise _not_found()
        confirm = bool(body.get("email_confirm"))
        if confirm and current.get("email_confirmed_at") is None:
            fields["email_confirmed_at"] = now
        if email is not None and email != current.get("email"):
            fields["email"] = email
            auth_admin.set_email_identity(uow=uow, user_id=user_id, email=email, verified=confirm, now=now)
        if body.get("app_metadata") is not None:
            fields["raw_app_meta_data"] = _merge(current["raw_app_meta_data"], body["app_metadata"])
        if body.get("user_metadata") is not None:
            fields["raw_user_meta_data"] = _merge(current["raw_user_meta_data"], body["user_metadata"])
        if body.get("role"):
            fields["role"] = str(body["role"])
        updated = auth_admin.update_user_fields(uow=uow, user_id=user_id, now=now, fields=fields) or current
        banned_until = fields.get("banned_until")
        if banned_until is not None and banned_until > now:
            # Rows are kept (not_after) so a refresh with one of their tokens is answered user_banned.
            end_user_sessions(uow, user_id, keep_rows=True)
    return updated


def delete_user(ctx: AuthContext, raw_id: str, *, soft: bool) -> None:
    """DELETE /admin/users/{id}: hard (the row and, by cascade, everything hanging off it) or soft
    (`should_soft_delete`: GoTrue's obfuscated row with `deleted_at`). Either way the sessions end now."""
    user_id = _user_id(raw_id)
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        user = auth_db.find_user_by_id(uow=uow, user_id=user_id, for_update=True)
        if user is None:
            raise _not_found()
        if soft and user.get("deleted_at") is not None:
            return
        end_user_sessions(uow, user_id)
        if soft:
            auth_admin.soft_delete_user(uow=uow, user_id=user_id, now=utcnow())
        else:
            auth_admin.hard_delete_user(uow=uow, user_id=user_id)
