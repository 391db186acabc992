"""Factories for test data. Users are created the way sign-up creates them (an `auth.users` row whose trigger
creates the profile, plus a live session) and get a real access token from the one minter, api/identity.py."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg
from psycopg.types.json import Jsonb

from api.identity import mint_access_token
from db.migrate import libpq_url
from schemas.settings import Settings


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
    """Insert an auth user (its profile comes from the sign-up trigger) with a session and an access token."""
    user_id = str(uuid.uuid4())
    session_id = str(uuid.uuid4())
    email = email or f"user-{user_id[:8]}@example.com"
    now = datetime.now(timezone.utc)
    app_meta = {"provider": "email", "providers": ["email"]}
    user_meta = {"display_name": display_name} if display_name else {}
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        with conn.transaction():
            conn.execute(
                "insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at, "
                "raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous) "
                "values (%s, 'authenticated', 'authenticated', %s, '', %s, %s, %s, %s, %s, false)",
                (user_id, email, now, Jsonb(app_meta), Jsonb(user_meta), now, now))
            conn.execute("insert into auth.sessions (id, user_id, created_at, updated_at, aal) "
                         "values (%s, %s, %s, %s, 'aal1')", (session_id, user_id, now, now))
            if credits is not None or tier is not None:
                conn.execute("update public.users_profile set credits = coalesce(%s, credits), "
                             "tier = coalesce(%s::public.user_tier, tier) where id = %s", (credits, tier, user_id))
    token = mint_access_token(settings, session_id=session_id, user={
        "id": user_id, "email": email, "raw_app_meta_data": app_meta, "raw_user_meta_data": user_meta})
    return TestUser(user_id, email, password, token.token, session_id)
