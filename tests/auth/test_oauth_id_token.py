"""`POST /token?grant_type=id_token`: Google (and Apple) ID tokens verified against a local OpenID provider's
discovery document and keys, GoTrue's errors, and the account decision (new user, returning user, linking by a
verified email only)."""
from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from api.auth.oauth.oidc import IdTokenError, OidcCache, ProviderUnavailable, verify_id_token
from api.auth.oauth.providers import Provider
from tests.support.auth import PASSWORD, GoTrue, new_email
from tests.support.oidc import IOS_CLIENT_ID, OidcProvider, sha256_hex, start_provider_api


def grant(client, id_token, provider="google", **body):
    return client.post("/token?grant_type=id_token", {"provider": provider, "id_token": id_token, **body})


def test_new_google_user_gets_a_session_identity_metadata_and_profile(google, oidc, owner_conn):
    email, sub = new_email(), "1098" + uuid.uuid4().hex[:12]
    token = oidc.id_token(sub=sub, email=email, name="Ada L", picture="https://img.example.test/ada.png", hd="x.com")
    # supabase-py and Flutter send explicit nulls for the fields they do not use
    answer = grant(google, token, access_token=None, nonce=None, gotrue_meta_security={"captcha_token": None})
    assert answer.status_code == 200, answer.text
    session = answer.json()
    user = session["user"]
    assert user["email"] == email and user["email_confirmed_at"]
    assert user["app_metadata"] == {"provider": "google", "providers": ["google"]}
    assert user["user_metadata"]["full_name"] == "Ada L"
    assert user["user_metadata"]["avatar_url"] == "https://img.example.test/ada.png"
    [identity] = user["identities"]
    assert identity["provider"] == "google" and identity["id"] == sub and identity["email"] == email
    assert identity["identity_data"] == {
        "iss": oidc.issuer, "sub": sub, "name": "Ada L", "picture": "https://img.example.test/ada.png",
        "email": email, "email_verified": True, "phone_verified": False, "full_name": "Ada L",
        "avatar_url": "https://img.example.test/ada.png", "provider_id": sub, "custom_claims": {"hd": "x.com"}}
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    assert claims["amr"][0]["method"] == "oauth" and claims["app_metadata"]["provider"] == "google"
    assert google.user(session["access_token"]).json()["identities"] == user["identities"]
    profile = owner_conn.execute("select display_name, avatar_url from public.users_profile where id = %s",
                                 (user["id"],)).fetchone()
    assert profile == ("Ada L", "https://img.example.test/ada.png")

    again = grant(google, oidc.id_token(sub=sub, email=email, name="Ada Lovelace", aud=IOS_CLIENT_ID))
    assert again.status_code == 200, again.text
    assert again.json()["user"]["id"] == user["id"]  # the same identity signs in the same user
    assert again.json()["user"]["user_metadata"]["full_name"] == "Ada Lovelace"
    assert owner_conn.execute("select count(*) from auth.identities where user_id = %s",
                              (user["id"],)).fetchone()[0] == 1
    # the profile keeps what it had: only an empty field is filled from a provider
    assert owner_conn.execute("select display_name from public.users_profile where id = %s",
                              (user["id"],)).fetchone()[0] == "Ada L"


def test_refusals_use_gotrue_oauth_shape(google, oidc):
    email = new_email()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = [
        (grant(google, ""), "invalid request", "id_token required"),
        (grant(google, oidc.id_token(email=email, key=stranger)), "invalid request", "Bad ID token"),
        (grant(google, oidc.id_token(email=email, expires_in=-120)), "invalid request", "Bad ID token"),
        (grant(google, oidc.id_token(email=email, issuer="https://evil.example.test")), "invalid request",
         "Bad ID token"),
        (grant(google, oidc.id_token(email=email, kid="unknown")), "invalid request", "Bad ID token"),
        (grant(google, oidc.id_token(email=email, aud="someone-else")), "invalid request",
         "Unacceptable audience in id_token: ['someone-else']"),
        (grant(google, oidc.id_token(email=email, nonce=sha256_hex("n-1"))), "invalid request",
         "Passed nonce and nonce in id_token should either both exist or not."),
        (grant(google, oidc.id_token(email=email), nonce="n-1"), "invalid request",
         "Passed nonce and nonce in id_token should either both exist or not."),
        (grant(google, oidc.id_token(email=email, nonce=sha256_hex("n-1")), nonce="n-2"), "invalid nonce",
         "Nonces mismatch"),
        (grant(google, "not.a.jwt"), "invalid request", "Bad ID token"),
    ]
    for answer, error, description in cases:
        assert answer.status_code == 400, answer.text
        assert answer.json() == {"error": error, "error_description": description}
    # an unsigned token (alg none) never passes
    unsigned = jwt.encode({"iss": oidc.issuer, "aud": oidc.client_ids[0], "sub": "1", "exp": int(time.time()) + 60},
                          None, algorithm="none")
    assert grant(google, unsigned).json()["error_description"] == "Bad ID token"
    ok = grant(google, oidc.id_token(email=email, nonce=sha256_hex("n-1")), nonce="n-1")
    assert ok.status_code == 200, ok.text
    unknown = grant(google, oidc.id_token(email=email), provider="facebook")
    assert unknown.status_code == 400 and unknown.json()["code"] == "validation_failed"


def test_apple_is_the_same_path(google, apple_oidc):
    email = new_email()
    token = apple_oidc.id_token(email=email, email_verified="true", is_private_email="false")
    answer = grant(google, token, provider="apple")
    assert answer.status_code == 200, answer.text
    user = answer.json()["user"]
    assert user["app_metadata"]["provider"] == "apple" and user["identities"][0]["provider"] == "apple"
    assert user["identities"][0]["identity_data"]["email_verified"] is True
    # a token Google's provider would accept is not an Apple token (issuer, audience)
    assert grant(google, apple_oidc.id_token(email=email, aud="web-client.apps.example.test"),
                 provider="apple").json()["error_description"].startswith("Unacceptable audience")


def test_verified_provider_email_links_to_the_existing_account(google, oidc, owner_conn):
    email = new_email()
    existing = google.signup(email).json()["user"]
    answer = grant(google, oidc.id_token(email=email, email_verified=True, name="Linked",
                                         picture="https://img.example.test/l.png"))
    assert answer.status_code == 200, answer.text
    user = answer.json()["user"]
    assert user["id"] == existing["id"]
    assert [identity["provider"] for identity in user["identities"]] == ["email", "google"]
    assert user["app_metadata"] == {"provider": "email", "providers": ["email", "google"]}
    assert google.password_grant(email).status_code == 200  # the password still works
    # the first Google sign-in fills the profile's empty name and picture
    assert owner_conn.execute("select display_name, avatar_url from public.users_profile where id = %s",
                              (existing["id"],)).fetchone() == ("Linked", "https://img.example.test/l.png")


def test_unverified_provider_email_never_links_even_with_autoconfirm(google, oidc, owner_conn):
    email = new_email()
    existing = google.signup(email).json()["user"]
    answer = grant(google, oidc.id_token(email=email, email_verified=False))
    assert answer.status_code == 422
    assert answer.json()["code"] == "provider_email_needs_verification"
    assert owner_conn.execute("select count(*) from auth.identities where user_id = %s",
                              (existing["id"],)).fetchone()[0] == 1
    # with no account behind the email, a new user is created as GoTrue does (autoconfirm is on)
    fresh = grant(google, oidc.id_token(email=new_email(), email_verified=False))
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["user"]["identities"][0]["identity_data"]["email_verified"] is False


def test_banned_user_is_refused(google, oidc, owner_conn):
    sub, email = uuid.uuid4().hex, new_email()
    user = grant(google, oidc.id_token(sub=sub, email=email)).json()["user"]
    owner_conn.execute("update auth.users set banned_until = now() + interval '1 hour' where id = %s", (user["id"],))
    answer = grant(google, oidc.id_token(sub=sub, email=email))
    assert answer.status_code == 403 and answer.json()["code"] == "user_banned"


def test_link_identity_with_an_id_token(google, oidc):
    session = google.signup().json()
    token = oidc.id_token(email=new_email())
    refused = grant(google, token, link_identity=True)
    assert refused.json() == {"error": "invalid request",
                              "error_description": "Linking requires a valid user access token in Authorization"}
    linked = google.post("/token?grant_type=id_token",
                         {"provider": "google", "id_token": token, "link_identity": True},
                         bearer=session["access_token"])
    assert linked.status_code == 200, linked.text
    assert linked.json()["user"]["id"] == session["user"]["id"]
    assert [i["provider"] for i in linked.json()["user"]["identities"]] == ["email", "google"]
    other = google.signup().json()
    taken = google.post("/token?grant_type=id_token", {"provider": "google", "id_token": token,
                                                       "link_identity": True}, bearer=other["access_token"])
    assert taken.status_code == 422 and taken.json()["code"] == "identity_already_exists"
    assert taken.json()["message"] == "Identity is already linked to another user"


# --- the verifier in-process: discovery and key caching ---------------------------------------------------------

def _provider(oidc) -> Provider:
    return Provider(name="google", client_ids=oidc.client_ids, discovery_url=oidc.discovery_url)


def test_stale_discovery_and_keys_serve_when_a_refresh_fails(oidc):
    cache = OidcCache(ttl=0, key_refetch=0)  # every call refreshes
    provider = _provider(oidc)
    assert verify_id_token(cache, provider, oidc.id_token(sub="s1"))["sub"] == "s1"
    oidc.failing = True
    try:
        before = dict(oidc.fetches)
        assert verify_id_token(cache, provider, oidc.id_token(sub="s2"))["sub"] == "s2"
        assert oidc.fetches["discovery"] > before["discovery"]  # it did try, and fell back to the stale copy
        with pytest.raises(ProviderUnavailable):
            verify_id_token(OidcCache(), provider, oidc.id_token(sub="s3"))  # nothing cached: no sign-in
    finally:
        oidc.failing = False


@pytest.fixture
def own_oidc():
    """A provider of the test's own: rotating keys on the module's one would race the API's key cache."""
    provider = OidcProvider().start()
    yield provider
    provider.stop()


def test_keys_are_cached_and_refetched_for_a_new_kid(own_oidc):
    oidc = own_oidc
    cache = OidcCache(key_refetch=0)
    provider = _provider(oidc)
    verify_id_token(cache, provider, oidc.id_token(sub="a"))
    before = dict(oidc.fetches)
    verify_id_token(cache, provider, oidc.id_token(sub="b"))
    assert oidc.fetches == before  # served from the cache
    oidc.rotate_key()
    assert verify_id_token(cache, provider, oidc.id_token(sub="c"))["sub"] == "c"
    assert oidc.fetches["jwks"] == before["jwks"] + 1
    throttled = OidcCache(key_refetch=3600)
    verify_id_token(throttled, provider, oidc.id_token(sub="d"))
    count = oidc.fetches["jwks"]
    for _ in range(3):
        with pytest.raises(IdTokenError):
            verify_id_token(throttled, provider, oidc.id_token(sub="e", kid="forged"))
    assert oidc.fetches["jwks"] == count  # forged kids do not make it hammer the provider


def test_scheme_less_google_issuer_is_accepted_only_as_an_alias(oidc):
    cache = OidcCache()
    google = Provider(name="google", client_ids=oidc.client_ids, discovery_url=oidc.discovery_url,
                      issuer_aliases=("accounts.google.com",))
    token = oidc.id_token(issuer="accounts.google.com")
    assert verify_id_token(cache, google, token)["iss"] == "accounts.google.com"
    with pytest.raises(IdTokenError):
        verify_id_token(cache, _provider(oidc), token)


def test_password_user_signing_in_with_unverified_google_keeps_password(google, oidc):
    email = new_email()
    google.signup(email)
    grant(google, oidc.id_token(email=email, email_verified=False))
    assert google.password_grant(email, PASSWORD).status_code == 200


def test_an_unconfirmed_account_is_taken_over_only_by_the_verified_owner(google, oidc, owner_conn):
    """Someone registered the victim's address with their own password and never confirmed it: the victim's
    verified Google sign-in gets the account, and the squatter's password and identities go."""
    email = new_email()
    squatter = google.signup(email).json()["user"]
    owner_conn.execute("update auth.users set email_confirmed_at = null where id = %s", (squatter["id"],))
    answer = grant(google, oidc.id_token(email=email, email_verified=True))
    assert answer.status_code == 200, answer.text
    user = answer.json()["user"]
    assert user["id"] == squatter["id"] and user["email_confirmed_at"]
    assert [identity["provider"] for identity in user["identities"]] == ["google"]
    assert google.password_grant(email).json()["code"] == "invalid_credentials"


@pytest.fixture(scope="module")
def confirming_api(settings, oidc):
    server = start_provider_api(settings, oidc, auth_mailer_autoconfirm=False)
    yield server
    server.stop()


def test_with_confirmations_on_an_unverified_provider_email_gets_no_session(confirming_api, anon_key, oidc,
                                                                            owner_conn):
    client = GoTrue(confirming_api.url, anon_key)
    try:
        sub, email = uuid.uuid4().hex, new_email()
        for _ in range(2):  # the second sign-in with the same identity is refused too
            answer = grant(client, oidc.id_token(sub=sub, email=email, email_verified=False))
            assert answer.status_code == 422 and answer.json()["code"] == "provider_email_needs_verification"
        assert owner_conn.execute("select email_confirmed_at from auth.users where email = %s",
                                  (email,)).fetchone() == (None,)
        verified = grant(client, oidc.id_token(sub=sub, email=email, email_verified=True))
        assert verified.status_code == 200 and verified.json()["user"]["email_confirmed_at"]
    finally:
        client.close()
