"""Identities a signed-in user manages: link a provider through the redirect flow
(`GET /user/identities/authorize`), unlink one (`DELETE /user/identities/{id}`, never the last), and
AUTH_MANUAL_LINKING_ENABLED=false turning both off."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.auth import GoTrue, new_email
from tests.support.oidc import start_provider_api

SITE = "http://127.0.0.1:3000"


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def link_url(client: GoTrue, access_token: str, hint: str, **params: str) -> httpx.Response:
    return client.http.get(client.url + "/user/identities/authorize",
                           params={"provider": "google", "redirect_to": f"{SITE}/linked", "login_hint": hint,
                                   "skip_http_redirect": "true", **params},
                           headers=client.headers(access_token))


def run_redirects(url: str) -> str:
    with httpx.Client(timeout=15) as browser:
        for _ in range(4):
            if url.startswith(SITE):
                return url
            url = browser.get(url).headers["Location"]
    raise AssertionError(url)


def test_link_a_provider_through_the_redirect_flow_then_unlink_it(google, oidc):
    session = google.signup().json()
    token = session["access_token"]
    sub = uuid.uuid4().hex
    answer = link_url(google, token, oidc.login_hint(sub=sub, email=new_email(), name="Linked Name"))
    assert answer.status_code == 200, answer.text
    landed = run_redirects(answer.json()["url"])
    assert landed.startswith(f"{SITE}/linked#access_token="), landed
    user = google.user(token).json()
    assert user["id"] == session["user"]["id"]
    assert [identity["provider"] for identity in user["identities"]] == ["email", "google"]
    assert user["app_metadata"]["providers"] == ["email", "google"]
    google_identity = user["identities"][1]
    assert google_identity["id"] == sub

    # the same Google account cannot be linked to a second user
    other = google.signup().json()
    again = run_redirects(link_url(google, other["access_token"], oidc.login_hint(sub=sub)).json()["url"])
    assert query(again)["error_code"] == "identity_already_exists"

    delete = google.http.delete(f"{google.url}/user/identities/{google_identity['identity_id']}",
                                headers=google.headers(token))
    assert delete.status_code == 200 and delete.json() == {}
    user = google.user(token).json()
    assert [identity["provider"] for identity in user["identities"]] == ["email"]
    assert user["app_metadata"]["providers"] == ["email"]

    last = google.http.delete(f"{google.url}/user/identities/{user['identities'][0]['identity_id']}",
                              headers=google.headers(token))
    assert last.status_code == 422 and last.json()["code"] == "single_identity_not_deletable"
    unknown = google.http.delete(f"{google.url}/user/identities/{uuid.uuid4()}", headers=google.headers(token))
    assert unknown.status_code == 422 and unknown.json()["code"] == "identity_not_found"
    not_uuid = google.http.delete(f"{google.url}/user/identities/nope", headers=google.headers(token))
    assert not_uuid.status_code == 404 and not_uuid.json()["code"] == "validation_failed"
    # another user's identity is "not found" for this one
    theirs = google.user(other["access_token"]).json()["identities"][0]["identity_id"]
    assert google.http.delete(f"{google.url}/user/identities/{theirs}",
                              headers=google.headers(token)).json()["code"] == "identity_not_found"


def test_linking_needs_a_user_token(google, oidc):
    anonymous = google.http.get(google.url + "/user/identities/authorize", params={"provider": "google"},
                                headers=google.headers())
    assert anonymous.status_code == 400
    assert anonymous.json()["error_description"] == "Linking requires a valid user access token in Authorization"


@pytest.fixture(scope="module")
def no_linking_api(settings, oidc) -> Iterator:
    server = start_provider_api(settings, oidc, auth_manual_linking_enabled=False)
    yield server
    server.stop()


def test_manual_linking_can_be_turned_off(no_linking_api, anon_key, oidc):
    client = GoTrue(no_linking_api.url, anon_key)
    try:
        session = client.signup().json()
        token = session["access_token"]
        for answer in (link_url(client, token, oidc.login_hint(email=new_email())),
                       client.http.delete(f"{client.url}/user/identities/{uuid.uuid4()}", headers=client.headers(token)),
                       client.post("/token?grant_type=id_token", {"provider": "google", "link_identity": True,
                                                                  "id_token": oidc.id_token(email=new_email())},
                                   bearer=token)):
            assert answer.status_code == 404 and answer.json() == {"code": "manual_linking_disabled",
                                                                   "message": "Manual linking is disabled"}
        # automatic linking by a verified email still works
        signed_in = client.post("/token?grant_type=id_token", {"provider": "google", "id_token": oidc.id_token(
            email=session["user"]["email"], email_verified=True)})
        assert signed_in.status_code == 200 and signed_in.json()["user"]["id"] == session["user"]["id"]
    finally:
        client.close()
