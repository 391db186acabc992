"""SQL for GoTrue's tables (`auth.users`, `auth.identities`, `auth.sessions`, `auth.refresh_tokens`), run as
`supabase_auth_admin`.

Every function takes an open unit of work (`uow=`) and never commits: the caller (api/auth/service.py, the test
factories) owns the transaction. `AUTH_ADMIN` is the only caller that reaches these tables; no JWT maps to it
(api/identity.py only ever yields anon, authenticated or service_role).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from db.uow import Caller, UnitOfWork

AUTH_ADMIN = Caller("supabase_auth_admin", {"role": "supabase_auth_admin"})  # type: ignore[arg-type]
# GoTrue writes this instance id on every row it creates; kept so a GoTrue could take over the tables.
GOTRUE_INSTANCE_ID = "00000000-0000-0000-0000-000000000000"

# Every user read returns the user's identities too, in the same round trip (oldest first, as GoTrue lists them).
USER_COLUMNS = ("id, aud, role, email, encrypted_password, email_confirmed_at, confirmation_sent_at, phone, "
                "raw_app_meta_data, raw_user_meta_data, created_at, updated_at, last_sign_in_at, banned_until, "
                "deleted_at, is_anonymous, invited_at, recovery_sent_at, email_change, email_change_sent_at, "
                "(select coalesce(jsonb_agg(to_jsonb(i) order by i.created_at, i.id), '[]'::jsonb) "
                "from auth.identities i where i.user_id = auth.users.id) as identities")
IDENTITY_COLUMNS = ("id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at, "
                    "email")


class EmailTakenError(Exception):
    """A user with this email already exists."""


def hash_refresh_token(token: str) -> str:
    """What `auth.refresh_tokens.token` holds: the SHA-256 (hex) of the opaque token, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _identity(values: dict[str, Any]) -> dict[str, Any]:
    identity = dict(values)
    for key in ("id", "user_id"):
        identity[key] = str(identity[key])
    for key in ("last_sign_in_at", "created_at", "updated_at"):
        identity[key] = _timestamp(identity.get(key))
    identity["identity_data"] = identity.get("identity_data") or {}
    return identity


def _user(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    user = dict(row._mapping)
    user["id"] = str(user["id"])
    user["raw_app_meta_data"] = user.get("raw_app_meta_data") or {}
    user["raw_user_meta_data"] = user.get("raw_user_meta_data") or {}
    user["identities"] = [_identity(identity) for identity in user.get("identities") or ()]
    return user


def find_user_by_email(*, uow: UnitOfWork, email: str) -> dict[str, Any] | None:
    row = uow.execute(f"select {USER_COLUMNS} from auth.users where email = :email and is_anonymous is false "
                      "and deleted_at is null order by created_at limit 1", {"email": email}).first()
    return _user(row)


def find_user_by_id(*, uow: UnitOfWork, user_id: str, for_update: bool = False) -> dict[str, Any] | None:
    lock = " for update" if for_update else ""
    row = uow.execute(f"select {USER_COLUMNS} from auth.users where id = cast(:id as uuid){lock}",
                      {"id": user_id}).first()
    return _user(row)


def insert_user(*, uow: UnitOfWork, email: str, password_hash: str, user_metadata: dict[str, Any],
                confirmed: bool, now: datetime, user_id: str | None = None) -> dict[str, Any]:
    """Create an email user; its `users_profile` comes from the `on_auth_user_created` trigger.

    The email is serialised with a transaction-scoped advisory lock instead of `on conflict`, because the unique
    index on `auth.users.email` differs between GoTrue versions (partial on is_sso_user or is_anonymous).
    """
    uow.execute("select pg_advisory_xact_lock(hashtextextended('segbase.auth.email:' || :email, 0))",
                {"email": email})
    if find_user_by_email(uow=uow, email=email) is not None:
        raise EmailTakenError(email)
    app_metadata = {"provider": "email", "providers": ["email"]}
    row = uow.execute(
        f"insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, "
        f"confirmation_sent_at, phone, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous) "
        f"values (cast(:instance_id as uuid), cast(:id as uuid), 'authenticated', 'authenticated', :email, :hash, "
        f":confirmed_at, :sent_at, null, cast(:app_meta as jsonb), cast(:user_meta as jsonb), :now, :now, false) "
        f"returning {USER_COLUMNS}",
        {"instance_id": GOTRUE_INSTANCE_ID, "id": user_id or str(uuid.uuid4()), "email": email,
         "hash": password_hash, "confirmed_at": now if confirmed else None, "sent_at": None if confirmed else now,
         "app_meta": json.dumps(app_metadata), "user_meta": json.dumps(user_metadata), "now": now}).first()
    user = _user(row)
    assert user is not None
    user["identities"] = [insert_identity(uow=uow, user_id=user["id"], provider="email", provider_id=user["id"],
                                          identity_data=email_identity_data(user), now=now)]
    return user


def email_identity_data(user: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's `identity_data` of an email identity."""
    return {"sub": user["id"], "email": user.get("email") or "",
            "email_verified": user.get("email_confirmed_at") is not None, "phone_verified": False}


def insert_identity(*, uow: UnitOfWork, user_id: str, provider: str, provider_id: str,
                    identity_data: dict[str, Any], now: datetime, identity_id: str | None = None) -> dict[str, Any]:
    row = uow.execute(
        f"insert into auth.identities (id, provider_id, user_id, identity_data, provider, last_sign_in_at, "
        f"created_at, updated_at) values (cast(:id as uuid), :provider_id, cast(:user_id as uuid), "
        f"cast(:data as jsonb), :provider, :now, :now, :now) returning {IDENTITY_COLUMNS}",
        {"id": identity_id or str(uuid.uuid4()), "provider_id": provider_id, "user_id": user_id,
         "data": json.dumps(identity_data), "provider": provider, "now": now}).first()
    return _identity(dict(row._mapping))


def find_identity(*, uow: UnitOfWork, provider: str, provider_id: str) -> dict[str, Any] | None:
    row = uow.execute(f"select {IDENTITY_COLUMNS} from auth.identities where provider = :provider "
                      "and provider_id = :provider_id", {"provider": provider, "provider_id": provider_id}).first()
    return None if row is None else _identity(dict(row._mapping))


def update_identity(*, uow: UnitOfWork, identity_id: str, identity_data: dict[str, Any], now: datetime,
                    signed_in: bool = False) -> None:
    """Replace an identity's data (the provider's latest claims); `signed_in` also records a sign-in with it."""
    uow.execute("update auth.identities set identity_data = cast(:data as jsonb), updated_at = :now, "
                "last_sign_in_at = case when :signed_in then :now else last_sign_in_at end "
                "where id = cast(:id as uuid)",
                {"id": identity_id, "data": json.dumps(identity_data), "now": now, "signed_in": signed_in})


def delete_identity(*, uow: UnitOfWork, user_id: str, identity_id: str) -> bool:
    row = uow.execute("delete from auth.identities where id = cast(:id as uuid) and user_id = cast(:user_id as uuid) "
                      "returning id", {"id": identity_id, "user_id": user_id}).first()
    return row is not None


def update_user(*, uow: UnitOfWork, user_id: str, now: datetime, password_hash: str | None = None,
                user_metadata: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Set a new password hash and/or replace `raw_user_meta_data` (the caller merges, as GoTrue does)."""
    row = uow.execute(
        f"update auth.users set encrypted_password = coalesce(:hash, encrypted_password), "
        f"raw_user_meta_data = coalesce(cast(:user_meta as jsonb), raw_user_meta_data), updated_at = :now "
        f"where id = cast(:id as uuid) returning {USER_COLUMNS}",
        {"id": user_id, "hash": password_hash, "now": now,
         "user_meta": None if user_metadata is None else json.dumps(user_metadata)}).first()
    return _user(row)


def record_sign_in(*, uow: UnitOfWork, user_id: str, now: datetime) -> dict[str, Any] | None:
    row = uow.execute(f"update auth.users set last_sign_in_at = :now, updated_at = :now "
                      f"where id = cast(:id as uuid) returning {USER_COLUMNS}", {"id": user_id, "now": now}).first()
    return _user(row)


def create_session(*, uow: UnitOfWork, user_id: str, now: datetime, user_agent: str | None = None,
                   ip: str | None = None, session_id: str | None = None) -> str:
    session_id = session_id or str(uuid.uuid4())
    uow.execute("insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip) "
                "values (cast(:id as uuid), cast(:user_id as uuid), :now, :now, 'aal1', :user_agent, "
                "cast(:ip as inet))",
                {"id": session_id, "user_id": user_id, "now": now, "user_agent": user_agent, "ip": ip})
    return session_id


def find_session(*, uow: UnitOfWork, session_id: str, for_update: bool = False) -> dict[str, Any] | None:
    lock = " for update" if for_update else ""
    row = uow.execute("select id, user_id, created_at, not_after, (not_after is not null and not_after <= now()) "
                      f"as expired from auth.sessions where id = cast(:id as uuid){lock}", {"id": session_id}).first()
    return None if row is None else dict(row._mapping)


def session_is_live(*, uow: UnitOfWork, session_id: str) -> bool:
    """The session exists, has not passed `not_after`, and its user is neither banned nor deleted.

    Checking the user here makes a ban or a deletion end the user's sessions whichever path wrote it (the admin
    API, the console, or plain SQL): this is the one check every surface's token verification and the realtime
    sweeper use.
    """
    return uow.execute("select 1 from auth.sessions s join auth.users u on u.id = s.user_id "
                       "where s.id = cast(:id as uuid) and (s.not_after is null or s.not_after > now()) "
                       "and (u.banned_until is null or u.banned_until <= now()) and u.deleted_at is null",
                       {"id": session_id}).first() is not None


def live_sessions(*, uow: UnitOfWork, session_ids: list[str]) -> set[str]:
    """Those of `session_ids` (UUID strings) that `session_is_live` holds live, in one query (the realtime
    sweeper checks every session with open channels every few seconds: thousands per process)."""
    rows = uow.execute("select s.id::text from auth.sessions s join auth.users u on u.id = s.user_id "
                       "where s.id = any(cast(:ids as uuid[])) and (s.not_after is null or s.not_after > now()) "
                       "and (u.banned_until is null or u.banned_until <= now()) and u.deleted_at is null",
                       {"ids": session_ids}).all()
    return {row[0] for row in rows}


def touch_session(*, uow: UnitOfWork, session_id: str, now: datetime) -> None:
    uow.execute("update auth.sessions set refreshed_at = cast(:now as timestamptz) at time zone 'utc', "
                "updated_at = :now where id = cast(:id as uuid)", {"id": session_id, "now": now})


def delete_session(*, uow: UnitOfWork, session_id: str) -> None:
    """Revoke one session; its refresh tokens go with it (`on delete cascade`)."""
    uow.execute("delete from auth.sessions where id = cast(:id as uuid)", {"id": session_id})


def end_user_sessions(*, uow: UnitOfWork, user_id: str, except_session_id: str | None = None,
                      keep_rows: bool = False) -> list[str]:
    """End all of a user's sessions, or all but one; return their ids.

    The one revocation every path uses: global/others logout, a password change, a ban, a deletion. Sessions are
    deleted (their refresh tokens go by cascade); with `keep_rows` (a ban) they are ended by setting `not_after`,
    so a later refresh with one of their tokens is answered `user_banned` rather than "not found". Either way
    `session_is_live` is false from the commit on, on every surface.
    """
    params = {"user_id": user_id, "keep": except_session_id}
    if keep_rows:
        rows = uow.execute("update auth.sessions set not_after = now(), updated_at = now() "
                           "where user_id = cast(:user_id as uuid) "
                           "and (cast(:keep as uuid) is null or id <> cast(:keep as uuid)) "
                           "and (not_after is null or not_after > now()) returning id", params).scalars()
    else:
        rows = uow.execute("delete from auth.sessions where user_id = cast(:user_id as uuid) "
                           "and (cast(:keep as uuid) is null or id <> cast(:keep as uuid)) returning id",
                           params).scalars()
    return [str(session_id) for session_id in rows]


def insert_refresh_token(*, uow: UnitOfWork, token: str, session_id: str, user_id: str, now: datetime,
                         parent_hash: str | None = None, sealed: bytes | None = None) -> None:
    uow.execute("insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, "
                "parent, session_id, segbase_sealed_token) values (cast(:instance_id as uuid), :token, :user_id, "
                "false, :now, :now, :parent, cast(:session_id as uuid), :sealed)",
                {"instance_id": GOTRUE_INSTANCE_ID, "token": hash_refresh_token(token), "user_id": user_id,
                 "now": now, "parent": parent_hash, "session_id": session_id, "sealed": sealed})


def find_refresh_token(*, uow: UnitOfWork, token_hash: str) -> dict[str, Any] | None:
    """The token's row, locked: concurrent refreshes with one token run one after the other."""
    row = uow.execute("select id, token, user_id, revoked, updated_at, parent, session_id from auth.refresh_tokens "
                      "where token = :token for update", {"token": token_hash}).first()
    return None if row is None else dict(row._mapping)


def find_active_refresh_token(*, uow: UnitOfWork, session_id: str) -> dict[str, Any] | None:
    """The session's newest unrevoked token (GoTrue's FindCurrentlyActiveRefreshToken)."""
    row = uow.execute("select id, token, parent, segbase_sealed_token from auth.refresh_tokens "
                      "where session_id = cast(:id as uuid) and revoked is false order by id desc limit 1",
                      {"id": session_id}).first()
    return None if row is None else dict(row._mapping)


def revoke_refresh_token(*, uow: UnitOfWork, token_id: int, now: datetime) -> None:
    uow.execute("update auth.refresh_tokens set revoked = true, updated_at = :now where id = :id",
                {"id": token_id, "now": now})
