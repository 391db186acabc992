"""GoTrue's JSON shapes on the wire: the user object, its identities and the session (AccessTokenResponse).

Field names, order and `omitempty` behaviour follow GoTrue (supabase/auth `internal/models/user.go`,
`internal/models/identity.go`, `internal/tokens/service.go`); supabase-py parses them with strict pydantic models
(supabase/supabase-py `src/auth/src/supabase_auth/types.py`), so a missing required key fails a whole sign-in.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from api.auth.service import IssuedSession


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user_json(user: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's user object, in its field order: `omitempty` fields left out when empty, email and phone never
    null (supabase/auth `internal/models/user.go::User`)."""
    confirmed_at = user.get("email_confirmed_at")
    out: dict[str, Any] = {"id": user["id"], "aud": user.get("aud") or "authenticated",
                           "role": user.get("role") or "authenticated", "email": user.get("email") or ""}
    _timestamps(out, user, ("email_confirmed_at", "invited_at"))
    out["phone"] = user.get("phone") or ""
    _timestamps(out, user, ("confirmation_sent_at",))
    if confirmed_at is not None:
        out["confirmed_at"] = rfc3339(confirmed_at)
    _timestamps(out, user, ("recovery_sent_at",))
    if user.get("email_change"):
        out["new_email"] = user["email_change"]
    _timestamps(out, user, ("email_change_sent_at", "last_sign_in_at"))
    out["app_metadata"] = user.get("raw_app_meta_data") or {}
    out["user_metadata"] = user.get("raw_user_meta_data") or {}
    out["identities"] = [identity_json(identity) for identity in user.get("identities") or ()]
    out["created_at"] = rfc3339(user.get("created_at"))
    out["updated_at"] = rfc3339(user.get("updated_at"))
    _timestamps(out, user, ("banned_until", "deleted_at"))
    out["is_anonymous"] = bool(user.get("is_anonymous"))
    return out


def _timestamps(out: dict[str, Any], user: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if user.get(key) is not None:
            out[key] = rfc3339(user[key])


def identity_json(identity: dict[str, Any]) -> dict[str, Any]:
    """One `auth.identities` row as GoTrue renders it: the row id is `identity_id`, the provider's id is `id`."""
    out: dict[str, Any] = {
        "identity_id": identity["id"],
        "id": identity["provider_id"],
        "user_id": identity["user_id"],
        "identity_data": identity.get("identity_data") or {},
        "provider": identity["provider"],
    }
    if identity.get("last_sign_in_at") is not None:
        out["last_sign_in_at"] = rfc3339(identity["last_sign_in_at"])
    out["created_at"] = rfc3339(identity.get("created_at"))
    out["updated_at"] = rfc3339(identity.get("updated_at"))
    if identity.get("email"):
        out["email"] = identity["email"]
    return out


def session_json(session: IssuedSession, *, weak_password: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": session.access.token,
        "token_type": "bearer",
        "expires_in": session.access.expires_in,
        "expires_at": session.access.expires_at,
        "refresh_token": session.refresh_token,
        "user": user_json(session.user),
    }
    if weak_password:
        body["weak_password"] = {"message": "Password does not meet the current requirements",
                                 "reasons": ["length"]}
    return body
