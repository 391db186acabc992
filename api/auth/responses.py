"""GoTrue's JSON shapes on the wire: the user object, its identities and the session (AccessTokenResponse).

Field names, order and `omitempty` behaviour follow GoTrue (supabase/auth `internal/models/user.go`,
`internal/models/identity.go`, `internal/tokens/service.go`); supabase-py parses them with strict pydantic models
(supabase/supabase-py `src/auth/src/supabase_auth/types.py`), so a missing required key fails a whole sign-in.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from api.auth.service import IssuedSession

IDENTITY_NAMESPACE = uuid.UUID("5d6f1c1e-3f0a-4f0c-9a55-6b1d2c9e7a10")


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user_json(user: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's user object: `omitempty` timestamps left out when null, email and phone never null."""
    confirmed_at = user.get("email_confirmed_at")
    out: dict[str, Any] = {"id": user["id"], "aud": user.get("aud") or "authenticated",
                           "role": user.get("role") or "authenticated", "email": user.get("email") or ""}
    for key, value in (("email_confirmed_at", confirmed_at), ("phone", None),
                       ("confirmation_sent_at", user.get("confirmation_sent_at")), ("confirmed_at", confirmed_at),
                       ("last_sign_in_at", user.get("last_sign_in_at"))):
        if key == "phone":
            out["phone"] = user.get("phone") or ""
        elif value is not None:
            out[key] = rfc3339(value)
    out["app_metadata"] = user.get("raw_app_meta_data") or {}
    out["user_metadata"] = user.get("raw_user_meta_data") or {}
    out["identities"] = [] if user.get("_obfuscated") else [_email_identity(user)]
    out["created_at"] = rfc3339(user.get("created_at"))
    out["updated_at"] = rfc3339(user.get("updated_at"))
    out["is_anonymous"] = bool(user.get("is_anonymous"))
    return out


def _email_identity(user: dict[str, Any]) -> dict[str, Any]:
    """The `email` identity GoTrue keeps in auth.identities; segbase derives it from the user row (stable id)."""
    user_id = user["id"]
    identity = {
        "identity_id": str(uuid.uuid5(IDENTITY_NAMESPACE, f"email:{user_id}")),
        "id": user_id,
        "user_id": user_id,
        "identity_data": {"email": user.get("email") or "", "email_verified": user.get("email_confirmed_at")
                          is not None, "phone_verified": False, "sub": user_id},
        "provider": "email",
        "created_at": rfc3339(user.get("created_at")),
        "updated_at": rfc3339(user.get("updated_at")),
        "email": user.get("email") or "",
    }
    if user.get("last_sign_in_at") is not None:
        identity["last_sign_in_at"] = rfc3339(user["last_sign_in_at"])
    return identity


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
