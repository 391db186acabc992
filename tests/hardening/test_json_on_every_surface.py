"""The one JSON check (api/http.py) on the surfaces that read raw bodies: GoTrue's /auth/v1, PostgREST's /rest/v1 and
storage's /storage/v1 (JSON bodies and object user metadata). A NUL in a string or key is refused in the surface's
shape naming the field (422 `validation_failed` for GoTrue and storage, PostgreSQL's own 400 22P05 for the data
API), nesting past MAX_JSON_DEPTH is a 400 naming the setting, and nothing is written or logged as a traceback."""
from __future__ import annotations

import base64
import json
import uuid

from tests.support.factories import create_user
from tests.support.logs import LogWindow


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def json_headers(user, anon_key: str) -> dict[str, str]:
    return {**user.headers(anon_key), "Content-Type": "application/json"}


# --- /auth/v1 ------------------------------------------------------------------------------------------------------

def test_auth_refuses_a_nul_with_422_naming_the_field_and_creates_no_user(api_server, http, db, anon_key) -> None:
    email = f"nul-{uuid.uuid4().hex[:8]}@example.com"
    logs = LogWindow(api_server)
    body = {"email": email, "password": "correct horse battery", "data": {"nick\u0000name": "x"}}
    response = http.post(f"{api_server.url}/auth/v1/signup", content=json.dumps(body),
                         headers={"apikey": anon_key, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
    assert response.json()["message"].startswith("data.nick\u0000name: must not contain a NUL character")
    assert db.execute("select count(*) from auth.users where email = %s", (email,)).fetchone()[0] == 0

    response = http.post(f"{api_server.url}/auth/v1/token?grant_type=password",
                         content=json.dumps({"email": "a\u0000@example.com", "password": "x"}),
                         headers={"apikey": anon_key, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed" and response.json()["message"].startswith("email: ")
    assert logs.tracebacks() == []


def test_auth_refuses_nesting_past_max_json_depth_as_bad_json(settings, api_server, http, anon_key) -> None:
    body = '{"email": "a@example.com", "password": "x", "data": {"k": %s}}' % deep(settings.max_json_depth)
    response = http.post(f"{api_server.url}/auth/v1/signup", content=body,
                         headers={"apikey": anon_key, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_json" and "MAX_JSON_DEPTH" in response.json()["message"]


# --- /rest/v1 ------------------------------------------------------------------------------------------------------

def test_rest_refuses_a_nul_with_postgrests_400_naming_the_field_and_writes_nothing(settings, api_server, http, db,
                                                                                    anon_key) -> None:
    user = create_user(settings)
    logs = LogWindow(api_server)
    count = "select count(*) from public.projects where user_id = %s"
    response = http.post(f"{api_server.url}/rest/v1/projects", content=json.dumps({"name": "a\u0000b"}),
                         headers=json_headers(user, anon_key))
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"code", "message", "details", "hint"}
    assert response.json()["code"] == "22P05" and response.json()["details"].startswith("name: ")
    assert db.execute(count, (user.id,)).fetchone()[0] == 0

    response = http.post(f"{api_server.url}/rest/v1/rpc/count_my_results", content=json.dumps({"st\u0000": 1}),
                         headers=json_headers(user, anon_key))
    assert response.status_code == 400 and response.json()["code"] == "22P05", response.text
    assert logs.tracebacks() == []


def test_rest_refuses_nesting_past_max_json_depth(settings, api_server, http, anon_key) -> None:
    user = create_user(settings)
    response = http.post(f"{api_server.url}/rest/v1/projects",
                         content='{"name": "p", "x": %s}' % deep(settings.max_json_depth),
                         headers=json_headers(user, anon_key))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "PGRST102" and "MAX_JSON_DEPTH" in response.json()["details"]


# --- /storage/v1 ---------------------------------------------------------------------------------------------------

def storage_count(db, name: str) -> int:
    return db.execute("select count(*) from storage.objects where bucket_id = 'images' and name = %s",
                      (name,)).fetchone()[0]


def test_storage_refuses_a_nul_in_user_metadata_naming_the_field_and_stores_nothing(settings, api_server, http, db,
                                                                                     anon_key) -> None:
    user = create_user(settings)
    logs = LogWindow(api_server)
    url = f"{api_server.url}/storage/v1/object/images"

    name = f"{user.id}/raw-{uuid.uuid4().hex[:6]}.png"
    metadata = base64.b64encode(json.dumps({"note": "a\u0000b"}).encode()).decode()
    response = http.post(f"{url}/{name}", content=b"\x89PNG", headers={
        **user.headers(anon_key), "Content-Type": "image/png", "x-metadata": metadata})
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"statusCode", "code", "error", "message"}
    assert response.json()["error"] == "validation_failed"
    assert response.json()["message"].startswith("x-metadata.note: must not contain a NUL character")
    assert storage_count(db, name) == 0

    name = f"{user.id}/form-{uuid.uuid4().hex[:6]}.png"
    response = http.post(f"{url}/{name}", headers=user.headers(anon_key), files={
        "metadata": (None, json.dumps({"k\u0000": 1})), "file": ("a.png", b"\x89PNG", "image/png")})
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("metadata.k\u0000: must not contain a NUL character")
    assert storage_count(db, name) == 0
    assert logs.tracebacks() == []


def test_storage_json_bodies_go_through_the_check(settings, api_server, http, db, anon_key, service_key) -> None:
    user = create_user(settings)
    service = {"apikey": service_key, "Authorization": f"Bearer {service_key}", "Content-Type": "application/json"}
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    response = http.post(f"{api_server.url}/storage/v1/bucket", headers=service,
                         content=json.dumps({"id": bucket, "name": bucket, "allowed_mime_types": ["image/\u0000"]}))
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("allowed_mime_types.0: must not contain a NUL character")
    assert db.execute("select count(*) from storage.buckets where id = %s", (bucket,)).fetchone()[0] == 0

    # Not JSON is refused rather than read as an empty body (which would list with every default).
    response = http.post(f"{api_server.url}/storage/v1/object/list/images", content=b'{"prefix": ',
                         headers=json_headers(user, anon_key))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_json"
    response = http.post(f"{api_server.url}/storage/v1/object/list/images",
                         content='{"prefix": "", "x": %s}' % deep(settings.max_json_depth),
                         headers=json_headers(user, anon_key))
    assert response.status_code == 400 and "MAX_JSON_DEPTH" in response.json()["message"], response.text
