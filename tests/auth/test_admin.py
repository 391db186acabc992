"""The admin API (`/auth/v1/admin/users…`) on the wire, through supabase-py's and supabase-js's `auth.admin`, and its
effect on sessions: a ban or a deletion through the API ends the user's tokens and realtime channels."""
from __future__ import annotations

import httpx
import jwt
import pytest
from supabase import create_client
from supabase_auth.errors import AuthApiError

from tests.auth.test_clients import run_node
from tests.auth.test_revocation import RESULTS, channel_ended
from tests.auth.test_wire import assert_gotrue_error
from tests.support.auth import PASSWORD, GoTrue, new_email, start_api
from tests.support.realtime import PhoenixSocket


@pytest.fixture
def admin(api_server, service_key):
    client = GoTrue(api_server.url, service_key)
    yield client
    client.close()


def admin_request(admin: GoTrue, method: str, path: str, body=None) -> httpx.Response:
    return admin.http.request(method, admin.url + path, json=body, headers=admin.headers())


def test_only_admin_roles_reach_the_admin_api(admin, gotrue, settings, anon_key):
    assert_gotrue_error(gotrue.http.get(gotrue.url + "/admin/users", headers=gotrue.headers()), 403, "not_admin")
    session = gotrue.signup().json()
    assert_gotrue_error(gotrue.http.get(gotrue.url + "/admin/users", headers=gotrue.headers(session["access_token"])),
                        403, "not_admin")
    forged = jwt.encode({"role": "service_role", "exp": 4102444800}, "another-secret-of-at-least-32-bytes!!",
                        algorithm="HS256")
    assert_gotrue_error(gotrue.http.get(gotrue.url + "/admin/users", headers=gotrue.headers(forged)), 403, "bad_jwt")
    supabase_admin = jwt.encode({"role": "supabase_admin", "exp": 4102444800},
                                settings.jwt_secret.get_secret_value(), algorithm="HS256")
    assert gotrue.http.get(gotrue.url + "/admin/users", headers=gotrue.headers(supabase_admin)).status_code == 200
    assert admin_request(admin, "GET", "/admin/users").status_code == 200


def test_create_get_update_and_list(admin, gotrue):
    email = new_email()
    created = admin_request(admin, "POST", "/admin/users", {
        "email": email.upper(), "password": PASSWORD, "email_confirm": True, "user_metadata": {"a": 1, "b": 2},
        "app_metadata": {"tier": "gold"}})
    assert created.status_code == 200, created.text
    user = created.json()
    assert user["email"] == email and user["email_confirmed_at"] and user["confirmed_at"]
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"], "tier": "gold"}
    assert user["user_metadata"] == {"a": 1, "b": 2} and [i["provider"] for i in user["identities"]] == ["email"]
    assert gotrue.password_grant(email).status_code == 200  # confirmed by the admin: signs in at once

    assert_gotrue_error(admin_request(admin, "POST", "/admin/users", {"email": email}), 422, "email_exists")
    assert_gotrue_error(admin_request(admin, "POST", "/admin/users", {}), 400, "validation_failed")
    assert admin_request(admin, "GET", f"/admin/users/{user['id']}").json()["email"] == email
    assert_gotrue_error(admin_request(admin, "GET", "/admin/users/6b1c7a1e-0000-4000-8000-000000000000"), 404,
                        "user_not_found")
    assert_gotrue_error(admin_request(admin, "GET", "/admin/users/not-a-uuid"), 404, "validation_failed")

    updated = admin_request(admin, "PUT", f"/admin/users/{user['id']}", {
        "user_metadata": {"b": None, "c": 3}, "app_metadata": {"tier": None}, "password": "another password"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["user_metadata"] == {"a": 1, "c": 3}
    assert updated.json()["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert_gotrue_error(gotrue.password_grant(email), 400, "invalid_credentials")
    assert gotrue.password_grant(email, "another password").status_code == 200

    unconfirmed = admin_request(admin, "POST", "/admin/users", {"email": new_email(), "password": PASSWORD}).json()
    assert "email_confirmed_at" not in unconfirmed
    assert_gotrue_error(gotrue.password_grant(unconfirmed["email"]), 400, "email_not_confirmed")
    confirmed = admin_request(admin, "PUT", f"/admin/users/{unconfirmed['id']}", {"email_confirm": True}).json()
    assert confirmed["email_confirmed_at"]

    listed = admin.http.get(admin.url + "/admin/users", params={"page": 1, "per_page": 2}, headers=admin.headers())
    assert listed.status_code == 200 and len(listed.json()["users"]) == 2 and listed.json()["aud"] == "authenticated"
    total = int(listed.headers["x-total-count"])
    assert total >= 2 and 'rel="last"' in listed.headers["link"]
    assert ('rel="next"' in listed.headers["link"]) == (total > 2)
    assert_gotrue_error(admin.http.get(admin.url + "/admin/users?page=x", headers=admin.headers()), 400,
                        "validation_failed")


def test_ban_duration_and_invalid_durations(admin, gotrue):
    user = admin_request(admin, "POST", "/admin/users", {"email": new_email(), "password": PASSWORD,
                                                         "email_confirm": True}).json()
    assert_gotrue_error(admin_request(admin, "PUT", f"/admin/users/{user['id']}", {"ban_duration": "forever"}), 400,
                        "validation_failed")
    banned = admin_request(admin, "PUT", f"/admin/users/{user['id']}", {"ban_duration": "1h30m"}).json()
    assert banned["banned_until"]
    assert_gotrue_error(gotrue.password_grant(user["email"]), 400, "user_banned")
    lifted = admin_request(admin, "PUT", f"/admin/users/{user['id']}", {"ban_duration": "none"}).json()
    assert "banned_until" not in lifted
    assert gotrue.password_grant(user["email"]).status_code == 200


@pytest.mark.parametrize("action", ["ban", "soft_delete", "hard_delete"])
def test_ban_or_delete_through_the_api_ends_tokens_and_sockets(api_server, admin, gotrue, anon_key, owner_conn,
                                                               action):
    session = gotrue.signup().json()
    user_id = session["user"]["id"]
    sock = PhoenixSocket(api_server.url, anon_key)
    try:
        assert sock.join("realtime:mine", [RESULTS], session["access_token"])["payload"]["status"] == "ok"
        if action == "ban":
            response = admin_request(admin, "PUT", f"/admin/users/{user_id}", {"ban_duration": "24h"})
        else:
            response = admin_request(admin, "DELETE", f"/admin/users/{user_id}",
                                     {"should_soft_delete": action == "soft_delete"})
        assert response.status_code == 200, response.text
        assert channel_ended(sock, "realtime:mine") == "Token has been revoked: the session ended"
    finally:
        sock.close()
    assert gotrue.user(session["access_token"]).status_code == 403
    refresh_code = "user_banned" if action == "ban" else "refresh_token_not_found"
    assert_gotrue_error(gotrue.refresh(session["refresh_token"]), 400, refresh_code)
    if action == "soft_delete":
        row = owner_conn.execute("select email, deleted_at, encrypted_password from auth.users where id = %s",
                                 (user_id,)).fetchone()
        assert row[0] != session["user"]["email"] and row[1] is not None and row[2] is None
        got = admin_request(admin, "GET", f"/admin/users/{user_id}").json()
        assert got["deleted_at"] and got["identities"] == []
        assert gotrue.signup(session["user"]["email"]).status_code == 200  # the address is free again
    if action == "hard_delete":
        assert owner_conn.execute("select count(*) from public.users_profile where id = %s",
                                  (user_id,)).fetchone()[0] == 0
        assert_gotrue_error(admin_request(admin, "GET", f"/admin/users/{user_id}"), 404, "user_not_found")


def test_disable_signup_refuses_sign_ups_but_not_admin_creation(settings, anon_key, service_key):
    server = start_api(settings, auth_disable_signup=True)
    try:
        public = GoTrue(server.url, anon_key)
        assert_gotrue_error(public.signup(), 422, "signup_disabled")
        operator = GoTrue(server.url, service_key)
        created = admin_request(operator, "POST", "/admin/users", {"email": new_email(), "password": PASSWORD,
                                                                   "email_confirm": True})
        assert created.status_code == 200
        assert public.password_grant(created.json()["email"]).status_code == 200
        public.close()
        operator.close()
    finally:
        server.stop()


def test_supabase_py_admin(api_server, anon_key, service_key):
    admin_api = create_client(api_server.url, service_key).auth.admin
    email = new_email()
    user = admin_api.create_user({"email": email, "password": PASSWORD, "email_confirm": True,
                                  "user_metadata": {"plan": "py"}}).user
    assert user.email == email and user.user_metadata == {"plan": "py"}
    assert admin_api.get_user_by_id(user.id).user.id == user.id
    assert any(listed.id == user.id for listed in admin_api.list_users(page=1, per_page=1000))
    updated = admin_api.update_user_by_id(user.id, {"user_metadata": {"more": True}, "ban_duration": "2h"}).user
    assert updated.user_metadata == {"plan": "py", "more": True} and updated.banned_until is not None
    with pytest.raises(AuthApiError) as banned:
        create_client(api_server.url, anon_key).auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert banned.value.code == "user_banned"
    admin_api.delete_user(user.id, should_soft_delete=True)
    assert admin_api.get_user_by_id(user.id).user.deleted_at is not None
    admin_api.delete_user(user.id)
    with pytest.raises(AuthApiError) as gone:
        admin_api.get_user_by_id(user.id)
    assert gone.value.code == "user_not_found" and gone.value.status == 404
    with pytest.raises(AuthApiError) as refused:
        create_client(api_server.url, anon_key).auth.admin.list_users()
    assert refused.value.code == "not_admin"


@pytest.mark.node
def test_supabase_js_admin(api_server, anon_key, service_key):
    email = new_email()
    out = run_node("auth_admin.mjs", api_server.url, anon_key, service_key, email, PASSWORD)
    assert out["create"] == {"error": None, "email": email, "confirmed": True, "userMetadata": {"plan": "js"},
                             "appMetadata": {"provider": "email", "providers": ["email"], "tier": "gold"}}
    assert out["duplicate"] == {"name": "AuthApiError", "code": "email_exists", "status": 422}
    assert out["list"]["error"] is None and out["list"]["count"] == 1 and out["list"]["total"] >= 1
    assert out["list"]["lastPage"] == out["list"]["total"]
    assert out["get"] == {"error": None, "id": out["get"]["id"]} and out["get"]["id"]
    assert out["update"] == {"error": None, "userMetadata": {"plan": "js", "extra": 1}}
    assert out["signIn"] is None and out["ban"] == {"error": None, "bannedUntil": True}
    assert out["afterBan"]["code"] == "user_banned"
    assert out["refreshAfterBan"]["code"] == "user_banned"
    assert out["unban"] is None and out["afterUnban"] is None
    assert out["notAdmin"]["code"] == "not_admin" and out["notAdmin"]["status"] == 403
    assert out["delete"] is None and out["afterDelete"]["code"] == "user_not_found"
