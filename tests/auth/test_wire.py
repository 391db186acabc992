"""/auth/v1 on the wire against a live `segbase api`: GoTrue's shapes, status codes and error bodies."""
from __future__ import annotations

import hashlib

import jwt
import pytest

from tests.support.auth import PASSWORD, new_email
from tests.support.factories import create_user

CLAIM_ORDER = ["iss", "sub", "aud", "exp", "iat", "email", "phone", "app_metadata", "user_metadata", "role", "aal",
               "amr", "session_id", "is_anonymous"]


def count_users(owner_conn, email: str) -> int:
    return owner_conn.execute("select count(*) from auth.users where email = %s", (email.lower(),)).fetchone()[0]


def assert_gotrue_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["x-supabase-api-version"] == "2024-01-01"
    body = response.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"]
    return body


def test_signup_returns_a_session_with_supabase_claims_and_a_profile(gotrue, settings, owner_conn):
    email = new_email()
    response = gotrue.signup(email.upper(), data={"display_name": "Ada"}, gotrue_meta_security={},
                             code_challenge=None, code_challenge_method=None)
    assert response.status_code == 200, response.text
    session = response.json()
    assert list(session) == ["access_token", "token_type", "expires_in", "expires_at", "refresh_token", "user"]
    assert session["token_type"] == "bearer" and session["expires_in"] == settings.jwt_expiry_seconds
    user = session["user"]
    assert user["email"] == email and user["aud"] == "authenticated" and user["role"] == "authenticated"
    assert user["phone"] == "" and user["email_confirmed_at"] and user["created_at"].endswith("Z")
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert user["user_metadata"] == {"display_name": "Ada"} and user["is_anonymous"] is False
    identity = user["identities"][0]
    assert identity["provider"] == "email" and identity["user_id"] == user["id"] and identity["identity_id"]

    header = jwt.get_unverified_header(session["access_token"])
    assert header["alg"] == "HS256"
    claims = jwt.decode(session["access_token"], settings.jwt_secret.get_secret_value(), algorithms=["HS256"],
                        audience="authenticated")
    assert list(claims) == CLAIM_ORDER
    assert claims["sub"] == user["id"] and claims["role"] == "authenticated" and claims["aal"] == "aal1"
    assert claims["iss"] == settings.jwt_issuer and claims["exp"] == session["expires_at"]
    assert claims["amr"][0]["method"] == "password"

    profile = owner_conn.execute("select display_name, tier, credits from public.users_profile where id = %s",
                                 (user["id"],)).fetchone()
    assert profile == ("Ada", "free", settings.starting_credits_free)


def test_refresh_tokens_are_stored_only_as_sha256(gotrue, owner_conn):
    session = gotrue.signup().json()
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    stored = [row[0] for row in owner_conn.execute(
        "select token from auth.refresh_tokens where session_id = %s", (claims["session_id"],))]
    assert stored == [hashlib.sha256(session["refresh_token"].encode()).hexdigest()]
    leaked = owner_conn.execute("select count(*) from auth.refresh_tokens where token = %s "
                                "or position(%s in coalesce(encode(segbase_sealed_token, 'escape'), '')) > 0",
                                (session["refresh_token"], session["refresh_token"])).fetchone()[0]
    assert leaked == 0


def test_password_hash_is_argon2id_at_or_above_owasp(gotrue, owner_conn):
    email = new_email()
    gotrue.signup(email)
    stored = owner_conn.execute("select encrypted_password from auth.users where email = %s", (email,)).fetchone()[0]
    assert stored.startswith("$argon2id$v=19$")
    params = dict(part.split("=") for part in stored.split("$")[3].split(","))
    assert int(params["m"]) >= 19 * 1024 and int(params["t"]) >= 2 and int(params["p"]) >= 1


def test_duplicate_signup_is_422_user_already_exists(gotrue, owner_conn):
    email = new_email()
    assert gotrue.signup(email).status_code == 200
    assert_gotrue_error(gotrue.signup(email.upper(), password="another password"), 422, "user_already_exists")
    assert count_users(owner_conn, email) == 1


def test_weak_password_is_422_with_reasons_and_writes_nothing(gotrue, owner_conn, settings):
    email = new_email()
    body = assert_gotrue_error(gotrue.signup(email, password="x" * (settings.auth_password_min_length - 1)),
                               422, "weak_password")
    assert body["weak_password"] == {"reasons": ["length"]}
    assert count_users(owner_conn, email) == 0


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"email": "EMAIL"}, 400, "validation_failed"),                               # no password
    ({"email": "EMAIL", "password": ""}, 400, "validation_failed"),
    ({"email": "not-an-email", "password": PASSWORD}, 400, "validation_failed"),
    ({"email": "EMAIL", "password": 12345678}, 400, "validation_failed"),          # wrong type
    ({"email": "EMAIL", "password": PASSWORD, "data": "x"}, 400, "validation_failed"),
    ({"password": PASSWORD}, 422, "anonymous_provider_disabled"),
])
def test_signup_bad_bodies_are_4xx_and_write_nothing(gotrue, owner_conn, body, status, code):
    email = new_email()
    body = {key: (email if value == "EMAIL" else value) for key, value in body.items()}
    assert_gotrue_error(gotrue.post("/signup", body), status, code)
    assert count_users(owner_conn, email) == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_malformed_json_is_400_bad_json(gotrue, raw):
    response = gotrue.post("/signup", content=raw, headers={"Content-Type": "application/json"})
    assert_gotrue_error(response, 400, "bad_json")
    response = gotrue.post("/token?grant_type=password", content=raw, headers={"Content-Type": "application/json"})
    assert_gotrue_error(response, 400, "bad_json")


def test_oversized_body_is_413_and_writes_nothing(gotrue, owner_conn, settings):
    email = new_email()
    response = gotrue.signup(email, data={"blob": "x" * (settings.max_request_bytes + 10)})
    assert response.status_code == 413
    assert response.json()["code"]
    assert count_users(owner_conn, email) == 0


def test_apikey_is_required_on_auth(gotrue, api_server, settings):
    url = f"{api_server.url}/auth/v1/signup"
    body = {"email": new_email(), "password": PASSWORD}
    missing = gotrue.http.post(url, json=body)
    assert missing.status_code == 401 and missing.json()["message"] == "No API key found in request"
    forged = jwt.encode({"role": "anon", "exp": 4_102_444_800}, "w" * 40, algorithm="HS256")
    user_token = create_user(settings).access_token
    for bad in ("not-a-key", forged, user_token):
        response = gotrue.http.post(url, json=body, headers={"apikey": bad})
        assert response.status_code == 401 and response.json()["message"] == "Invalid API key", bad
    assert gotrue.http.post(f"{url}?apikey={gotrue.apikey}", json=body).status_code == 200
    assert gotrue.http.get(f"{api_server.url}/healthz").status_code == 200


def test_password_grant_and_wrong_credentials_look_alike(gotrue):
    email = new_email()
    gotrue.signup(email)
    session = gotrue.password_grant(email.upper())
    assert session.status_code == 200 and session.json()["user"]["email"] == email
    assert session.json()["user"]["last_sign_in_at"]
    wrong = gotrue.password_grant(email, "wrong password!")
    unknown = gotrue.password_grant(new_email())
    garbage = gotrue.password_grant("not-an-email")
    for response in (wrong, unknown, garbage):
        assert_gotrue_error(response, 400, "invalid_credentials")
    assert wrong.json() == unknown.json() == garbage.json() == {"code": "invalid_credentials",
                                                                 "message": "Invalid login credentials"}


def test_unsupported_grant_type(gotrue):
    assert_gotrue_error(gotrue.post("/token?grant_type=web3", {}), 400, "invalid_credentials")


def test_refresh_rotates_and_errors(gotrue):
    session = gotrue.signup().json()
    rotated = gotrue.refresh(session["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != session["refresh_token"] and new["user"]["id"] == session["user"]["id"]
    assert gotrue.user(new["access_token"]).status_code == 200
    assert_gotrue_error(gotrue.refresh("no-such-token-at-all"), 400, "refresh_token_not_found")
    empty = gotrue.refresh("")
    assert empty.status_code == 400 and empty.json() == {"error": "invalid_request",
                                                         "error_description": "refresh_token required"}


def test_user_endpoint_errors(gotrue, anon_key, service_key):
    no_bearer = gotrue.http.get(gotrue.url + "/user", headers={"apikey": anon_key})
    assert_gotrue_error(no_bearer, 401, "no_authorization")
    for key in (anon_key, service_key):
        assert_gotrue_error(gotrue.user(key), 403, "bad_jwt")
    assert_gotrue_error(gotrue.user("a.b.c"), 403, "bad_jwt")


def test_put_user_merges_metadata_and_changes_password(gotrue):
    email = new_email()
    first = gotrue.signup(email, data={"display_name": "Old", "keep": 1}).json()
    second = gotrue.password_grant(email).json()
    response = gotrue.http.put(gotrue.url + "/user", headers=gotrue.headers(first["access_token"]),
                               json={"data": {"display_name": "New", "keep": None, "plan": "x"},
                                     "code_challenge": None, "code_challenge_method": None})
    assert response.status_code == 200, response.text
    assert response.json()["user_metadata"] == {"display_name": "New", "plan": "x"}
    assert gotrue.user(first["access_token"]).json()["user_metadata"] == {"display_name": "New", "plan": "x"}

    same = gotrue.http.put(gotrue.url + "/user", headers=gotrue.headers(first["access_token"]),
                           json={"password": PASSWORD})
    assert_gotrue_error(same, 422, "same_password")
    weak = gotrue.http.put(gotrue.url + "/user", headers=gotrue.headers(first["access_token"]),
                           json={"password": "short"})
    assert_gotrue_error(weak, 422, "weak_password")
    admin = gotrue.http.put(gotrue.url + "/user", headers=gotrue.headers(first["access_token"]),
                            json={"app_metadata": {"role": "admin"}})
    assert_gotrue_error(admin, 403, "not_admin")

    changed = gotrue.http.put(gotrue.url + "/user", headers=gotrue.headers(first["access_token"]),
                              json={"password": "a brand new password"})
    assert changed.status_code == 200
    assert_gotrue_error(gotrue.password_grant(email), 400, "invalid_credentials")
    assert gotrue.password_grant(email, "a brand new password").status_code == 200
    # GoTrue signs out the user's other sessions on a password change, and keeps the current one.
    assert gotrue.user(first["access_token"]).status_code == 200
    assert_gotrue_error(gotrue.user(second["access_token"]), 403, "session_not_found")


@pytest.mark.parametrize(("scope", "first_alive", "second_alive"), [
    ("local", False, True), ("others", True, False), ("global", False, False), (None, False, False)])
def test_logout_scopes(gotrue, scope, first_alive, second_alive):
    email = new_email()
    first = gotrue.signup(email).json()
    second = gotrue.password_grant(email).json()
    path = "/logout" if scope is None else f"/logout?scope={scope}"
    # supabase-py sends a JSON content type with no body
    response = gotrue.post(path, bearer=first["access_token"], headers={"Content-Type": "application/json"})
    assert response.status_code == 204 and response.content == b""
    assert (gotrue.user(first["access_token"]).status_code == 200) is first_alive
    assert (gotrue.user(second["access_token"]).status_code == 200) is second_alive
    assert (gotrue.refresh(second["refresh_token"]).status_code == 200) is second_alive


def test_logout_bad_scope_and_revoked_session(gotrue):
    session = gotrue.signup().json()
    assert_gotrue_error(gotrue.post("/logout?scope=everything", bearer=session["access_token"]), 400,
                        "validation_failed")
    assert gotrue.post("/logout", bearer=session["access_token"]).status_code == 204
    assert_gotrue_error(gotrue.post("/logout", bearer=session["access_token"]), 403, "session_not_found")
    assert gotrue.refresh(session["refresh_token"]).status_code == 400


def test_token_responses_are_never_cached(gotrue):
    email = new_email()
    signup = gotrue.signup(email)
    grant = gotrue.password_grant(email)
    refresh = gotrue.refresh(grant.json()["refresh_token"])
    user = gotrue.user(refresh.json()["access_token"])
    refused = gotrue.password_grant(email, "wrong password!")
    for response in (signup, grant, refresh, user, refused):
        assert response.headers["cache-control"] == "no-store", response.request.url


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("POST", "/admin/nothing/here"), ("GET", ""),
                                              ("DELETE", "/user/identities/x/y")])
def test_unknown_paths_answer_gotrue_404(gotrue, method, path):
    response = gotrue.http.request(method, gotrue.url + path, headers=gotrue.headers())
    assert response.status_code == 404
    assert response.json() == {"code": 404, "error_code": "not_found", "msg": "Not Found"}
    assert response.headers["cache-control"] == "no-store"
    # Unversioned shape, so the clients read `error_code` (they read `code` only with the version header).
    assert "x-supabase-api-version" not in response.headers


def test_wrong_method_on_a_known_path_is_405(gotrue):
    response = gotrue.http.get(gotrue.url + "/signup", headers=gotrue.headers())
    assert response.status_code == 405
    assert response.json() == {"code": 405, "error_code": "method_not_allowed", "msg": "Method Not Allowed"}
    assert "POST" in response.headers["allow"]
