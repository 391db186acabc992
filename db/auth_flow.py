"""SQL for sign-in with a provider: `auth.flow_state` (redirect flows in progress, PKCE codes) and the users and
identities an OAuth sign-in creates, links and removes. Run as `supabase_auth_admin`, in the caller's unit of
work (db/auth.py has the rest of GoTrue's tables).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from db.auth import GOTRUE_INSTANCE_ID, IDENTITY_COLUMNS, USER_COLUMNS, _identity, _user
from db.uow import UnitOfWork

FLOW_STATE_COLUMNS = ("id, user_id, auth_code, code_challenge_method::text as code_challenge_method, code_challenge, "
                      "provider_type, provider_access_token, provider_refresh_token, created_at, updated_at, "
                      "authentication_method, auth_code_issued_at, referrer, linking_target_id")
EXPIRED_FLOW_STATES_PER_SWEEP = 100


def insert_flow_state(*, uow: UnitOfWork, provider: str, referrer: str, code_challenge: str | None,
                      code_challenge_method: str | None, linking_target_id: str | None, now: datetime,
                      keep_seconds: int) -> str:
    """A redirect flow begins; rows long past their lifetime are swept on the way (a bounded batch)."""
    uow.execute("delete from auth.flow_state where id in (select id from auth.flow_state "
                "where created_at < :now - make_interval(secs => :keep) order by created_at limit :batch)",
                {"now": now, "keep": keep_seconds, "batch": EXPIRED_FLOW_STATES_PER_SWEEP})
    flow_id = str(uuid.uuid4())
    uow.execute("insert into auth.flow_state (id, provider_type, code_challenge, code_challenge_method, referrer, "
                "linking_target_id, authentication_method, created_at, updated_at) values (cast(:id as uuid), "
                ":provider, :challenge, cast(:method as auth.code_challenge_method), :referrer, "
                "cast(:target as uuid), 'oauth', :now, :now)",
                {"id": flow_id, "provider": provider, "challenge": code_challenge, "method": code_challenge_method,
                 "referrer": referrer, "target": linking_target_id, "now": now})
    return flow_id


def find_flow_state(*, uow: UnitOfWork, flow_id: str, for_update: bool = False) -> dict[str, Any] | None:
    lock = " for update" if for_update else ""
    row = uow.execute(f"select {FLOW_STATE_COLUMNS} from auth.flow_state where id = cast(:id as uuid){lock}",
                      {"id": flow_id}).first()
    return None if row is None else dict(row._mapping)


def find_flow_state_by_code(*, uow: UnitOfWork, auth_code: str) -> dict[str, Any] | None:
    row = uow.execute(f"select {FLOW_STATE_COLUMNS} from auth.flow_state where auth_code = :code for update",
                      {"code": auth_code}).first()
    return None if row is None else dict(row._mapping)


def claim_flow_state(*, uow: UnitOfWork, flow_id: str, auth_code: str, now: datetime) -> None:
    """Mark the state used (its `auth_code` is set): a second callback with it finds it taken."""
    uow.execute("update auth.flow_state set auth_code = :code, updated_at = :now where id = cast(:id as uuid)",
                {"id": flow_id, "code": auth_code, "now": now})


def issue_auth_code(*, uow: UnitOfWork, flow_id: str, user_id: str, provider_access_token: str | None,
                    provider_refresh_token: str | None, now: datetime) -> None:
    uow.execute("update auth.flow_state set user_id = cast(:user_id as uuid), auth_code_issued_at = :now, "
                "provider_access_token = :access, provider_refresh_token = :refresh, updated_at = :now "
                "where id = cast(:id as uuid)",
                {"id": flow_id, "user_id": user_id, "access": provider_access_token,
                 "refresh": provider_refresh_token, "now": now})


def delete_flow_state(*, uow: UnitOfWork, flow_id: str) -> None:
    uow.execute("delete from auth.flow_state where id = cast(:id as uuid)", {"id": flow_id})


def find_users_by_email(*, uow: UnitOfWork, email: str) -> list[dict[str, Any]]:
    """Every live, non-anonymous, non-SSO user with this email (normally at most one), locked."""
    rows = uow.execute(f"select {USER_COLUMNS} from auth.users where email = :email "
                       "and is_anonymous is false and deleted_at is null and is_sso_user is false "
                       "order by created_at for update", {"email": email.lower()}).all()
    return [user for user in (_user(row) for row in rows) if user is not None]


def lock_email(*, uow: UnitOfWork, email: str) -> None:
    """The lock db.auth.insert_user takes: sign-ups and provider sign-ups with one email run one at a time."""
    uow.execute("select pg_advisory_xact_lock(hashtextextended('segbase.auth.email:' || :email, 0))",
                {"email": email})


def insert_provider_user(*, uow: UnitOfWork, email: str | None, confirmed: bool, provider: str,
                         user_metadata: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A user created by a provider sign-in: no password; its profile comes from `on_auth_user_created`."""
    app_metadata = {"provider": provider, "providers": [provider]}
    row = uow.execute(
        f"insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, "
        f"phone, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous) "
        f"values (cast(:instance_id as uuid), cast(:id as uuid), 'authenticated', 'authenticated', :email, '', "
        f":confirmed_at, null, cast(:app_meta as jsonb), cast(:user_meta as jsonb), :now, :now, false) "
        f"returning {USER_COLUMNS}",
        {"instance_id": GOTRUE_INSTANCE_ID, "id": str(uuid.uuid4()), "email": email or None,
         "confirmed_at": now if confirmed else None, "app_meta": json.dumps(app_metadata),
         "user_meta": json.dumps(user_metadata), "now": now}).first()
    user = _user(row)
    assert user is not None
    return user


def update_provider_user(*, uow: UnitOfWork, user_id: str, user_metadata: dict[str, Any],
                         app_metadata: dict[str, Any], now: datetime, confirm: bool = False,
                         clear_password: bool = False, signed_in: bool = True) -> dict[str, Any] | None:
    """After a provider sign-in or link: new metadata, optionally confirmed, the password cleared (an unconfirmed
    account taken over by the verified owner of its email), and the sign-in time."""
    row = uow.execute(
        f"update auth.users set raw_user_meta_data = cast(:user_meta as jsonb), "
        f"raw_app_meta_data = cast(:app_meta as jsonb), updated_at = :now, "
        f"email_confirmed_at = case when :confirm then coalesce(email_confirmed_at, :now) else email_confirmed_at end, "
        f"encrypted_password = case when :clear then '' else encrypted_password end, "
        f"last_sign_in_at = case when :signed_in then :now else last_sign_in_at end "
        f"where id = cast(:id as uuid) returning {USER_COLUMNS}",
        {"id": user_id, "user_meta": json.dumps(user_metadata), "app_meta": json.dumps(app_metadata),
         "now": now, "confirm": confirm, "clear": clear_password, "signed_in": signed_in}).first()
    return _user(row)


def delete_other_identities(*, uow: UnitOfWork, user_id: str, keep_provider: str) -> None:
    uow.execute("delete from auth.identities where user_id = cast(:id as uuid) and provider <> :keep",
                {"id": user_id, "keep": keep_provider})


def user_identities(*, uow: UnitOfWork, user_id: str) -> list[dict[str, Any]]:
    rows = uow.execute(f"select {IDENTITY_COLUMNS} from auth.identities where user_id = cast(:id as uuid) "
                       "order by created_at, id for update", {"id": user_id}).all()
    return [_identity(dict(row._mapping)) for row in rows]


def set_app_metadata(*, uow: UnitOfWork, user_id: str, app_metadata: dict[str, Any], now: datetime) -> None:
    uow.execute("update auth.users set raw_app_meta_data = cast(:meta as jsonb), updated_at = :now "
                "where id = cast(:id as uuid)", {"id": user_id, "meta": json.dumps(app_metadata), "now": now})



def find_identity_for_update(*, uow: UnitOfWork, provider: str, provider_id: str) -> dict[str, Any] | None:
    row = uow.execute(f"select {IDENTITY_COLUMNS} from auth.identities where provider = :provider "
                      "and provider_id = :provider_id for update",
                      {"provider": provider, "provider_id": provider_id}).first()
    return None if row is None else _identity(dict(row._mapping))
