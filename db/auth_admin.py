"""SQL behind GoTrue's admin API (`/auth/v1/admin/users…`), run as `supabase_auth_admin`.

Like db/auth.py, every function takes the caller's open unit of work and never commits. User rows come back in
db/auth.py's shape (`USER_COLUMNS`), so api/auth/responses.py renders them.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from db.auth import USER_COLUMNS, _user
from db.uow import UnitOfWork


def list_users(*, uow: UnitOfWork, page: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
    """One page of users, newest first (GoTrue's default sort), and the total count."""
    total = uow.execute("select count(*) from auth.users where aud = 'authenticated'").scalar_one()
    rows = uow.execute(f"select {USER_COLUMNS} from auth.users where aud = 'authenticated' "
                       "order by created_at desc, id limit :limit offset :offset",
                       {"limit": per_page, "offset": (page - 1) * per_page}).all()
    return [user for user in (_user(row) for row in rows) if user is not None], int(total)


def update_user_fields(*, uow: UnitOfWork, user_id: str, now: datetime, fields: dict[str, Any]) -> dict[str, Any] | None:
    """Set the given columns of one user (names come from this module's callers, never from a request); JSON
    columns take dicts."""
    allowed = {"email", "encrypted_password", "email_confirmed_at", "raw_app_meta_data", "raw_user_meta_data",
               "banned_until", "role", "invited_at", "confirmation_sent_at", "recovery_sent_at", "email_change",
               "email_change_sent_at", "last_sign_in_at"}
    assignments = ["updated_at = :now"]
    params: dict[str, Any] = {"id": user_id, "now": now}
    for name, value in fields.items():
        if name not in allowed:
            raise ValueError(f"not an updatable user column: {name}")
        if name.startswith("raw_"):
            assignments.append(f"{name} = cast(:{name} as jsonb)")
            params[name] = json.dumps(value)
        else:
            assignments.append(f"{name} = :{name}")
            params[name] = value
    row = uow.execute(f"update auth.users set {', '.join(assignments)} where id = cast(:id as uuid) "
                      f"returning {USER_COLUMNS}", params).first()
    return _user(row)


def set_email_identity(*, uow: UnitOfWork, user_id: str, email: str, verified: bool, now: datetime) -> None:
    """Point the user's email identity at `email` (GoTrue's admin update and email change do the same)."""
    uow.execute("update auth.identities set identity_data = identity_data || cast(:data as jsonb), updated_at = :now "
                "where user_id = cast(:id as uuid) and provider = 'email'",
                {"id": user_id, "now": now, "data": json.dumps({"email": email, "email_verified": verified})})


def hard_delete_user(*, uow: UnitOfWork, user_id: str) -> bool:
    """Delete the user row; sessions, refresh tokens, identities and the profile go by `on delete cascade`."""
    return uow.execute("delete from auth.users where id = cast(:id as uuid) returning id", {"id": user_id}).first() is not None


def soft_delete_user(*, uow: UnitOfWork, user_id: str, now: datetime) -> None:
    """GoTrue's soft delete (`models.User.SoftDeleteUser`): the row stays with `deleted_at`, its email is replaced by
    an opaque value (so the address can sign up again), password and user metadata are cleared, identities removed.
    The caller ends the sessions."""
    user = uow.execute("select email, email_change from auth.users where id = cast(:id as uuid)",
                       {"id": user_id}).first()
    if user is None:
        return

    def obfuscate(value: str | None) -> str | None:
        return hashlib.sha256(f"{user_id}{value}".encode()).hexdigest() if value else value

    uow.execute("update auth.users set email = :email, email_change = :email_change, encrypted_password = null, "
                "raw_user_meta_data = '{}'::jsonb, deleted_at = :now, updated_at = :now "
                "where id = cast(:id as uuid)",
                {"id": user_id, "now": now, "email": obfuscate(user.email),
                 "email_change": obfuscate(user.email_change) or ""})
    uow.execute("delete from auth.identities where user_id = cast(:id as uuid)", {"id": user_id})
    uow.execute("delete from internal.auth_email_tokens where user_id = cast(:id as uuid)", {"id": user_id})
