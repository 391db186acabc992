"""Factories for test data. Users are created by the sign-up code path (db/auth.py as `supabase_auth_admin`: an
`auth.users` row whose trigger creates the profile, plus a live session and refresh token) and get a real access
token from the one minter, api/identity.py."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg

from api.auth.passwords import new_argon2
from api.auth.refresh_tokens import new_refresh_token
from api.identity import mint_access_token
from db import auth as auth_db
from db.engine import process_engine
from db.uow import unit_of_work
from db.urls import libpq_url
from schemas.settings import Settings

# Hundreds of users are made per run: each distinct password is hashed (real argon2id, so signing in with it
# works) once per process, and one small engine serves each database.
_password_hashes: dict[str, str] = {}


def _password_hash(password: str) -> str:
    if password not in _password_hashes:
        _password_hashes[password] = new_argon2().hash(password)
    return _password_hashes[password]


@dataclass
class TestUser:
    id: str
    email: str
    password: str
    access_token: str
    session_id: str

    def headers(self, apikey: str) -> dict[str, str]:
        return {"apikey": apikey, "Authorization": f"Bearer {self.access_token}"}


def create_user(settings: Settings, *, email: str | None = None, password: str = "correct horse battery",
                credits: int | None = None, tier: str | None = None,
                display_name: str | None = None) -> TestUser:
    """Sign up a user through db/auth.py (its profile comes from the sign-up trigger), with a session, a refresh
    token and an access token."""
    email = (email or f"user-{uuid.uuid4().hex[:12]}@example.com").lower()
    now = datetime.now(timezone.utc)
    user_metadata = {"display_name": display_name} if display_name else {}
    with unit_of_work(process_engine(settings, application_name="segbase-test-factories"), auth_db.AUTH_ADMIN) as uow:
        user = auth_db.insert_user(uow=uow, email=email, password_hash=_password_hash(password),
                                   user_metadata=user_metadata, confirmed=True, now=now)
        session_id = auth_db.create_session(uow=uow, user_id=user["id"], now=now)
        auth_db.insert_refresh_token(uow=uow, token=new_refresh_token(), session_id=session_id,
                                     user_id=user["id"], now=now)
    if credits is not None or tier is not None:
        # Credits and tier are not the user's to set: the owner writes them, as an operator would.
        with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
            conn.execute("update public.users_profile set credits = coalesce(%s, credits), "
                         "tier = coalesce(%s::public.user_tier, tier) where id = %s", (credits, tier, user["id"]))
    token = mint_access_token(settings, user=user, session_id=session_id)
    return TestUser(user["id"], email, password, token.token, session_id)
