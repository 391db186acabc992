"""auth.identities: GoTrue's table and JSON; every email user has one email identity, and users from before the
table keep the identity_id GET /user returned for them (the backfill migration)."""
from __future__ import annotations

import uuid
from pathlib import Path

from tests.support.auth import new_email

ROOT = Path(__file__).resolve().parents[2]
BACKFILL = ROOT / "db" / "migrations" / "20261202130000_backfill_email_identities.sql"
# The namespace segbase derived email identity ids in before identities were stored.
LEGACY_IDENTITY_NAMESPACE = uuid.UUID("5d6f1c1e-3f0a-4f0c-9a55-6b1d2c9e7a10")


def test_signup_stores_the_email_identity_and_get_user_returns_it(gotrue, owner_conn):
    session = gotrue.signup().json()
    user = session["user"]
    stored = owner_conn.execute("select id, provider_id, provider, identity_data, email from auth.identities "
                                "where user_id = %s", (user["id"],)).fetchall()
    assert len(stored) == 1
    identity_id, provider_id, provider, data, email = stored[0]
    assert (provider, provider_id, email) == ("email", user["id"], user["email"])
    assert data == {"sub": user["id"], "email": user["email"], "email_verified": True, "phone_verified": False}
    fetched = gotrue.user(session["access_token"]).json()["identities"]
    assert fetched == user["identities"]
    assert fetched[0]["identity_id"] == str(identity_id) and fetched[0]["id"] == user["id"]
    assert list(fetched[0]) == ["identity_id", "id", "user_id", "identity_data", "provider", "last_sign_in_at",
                                "created_at", "updated_at", "email"]


def test_backfill_keeps_the_identity_id_clients_already_have(owner_conn, gotrue):
    user_id, email = str(uuid.uuid4()), new_email()
    owner_conn.execute("insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, "
                       "raw_user_meta_data, created_at, updated_at) values (%s, 'authenticated', 'authenticated', "
                       "%s, now(), '{}', '{}', now(), now())", (user_id, email))
    assert owner_conn.execute("select count(*) from auth.identities where user_id = %s", (user_id,)).fetchone()[0] == 0
    owner_conn.execute(BACKFILL.read_text())
    owner_conn.execute(BACKFILL.read_text())  # a second run changes nothing
    rows = owner_conn.execute("select id, provider_id, identity_data from auth.identities where user_id = %s",
                              (user_id,)).fetchall()
    assert rows == [(uuid.uuid5(LEGACY_IDENTITY_NAMESPACE, f"email:{user_id}"), user_id,
                     {"sub": user_id, "email": email, "email_verified": True, "phone_verified": False})]
