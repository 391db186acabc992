"""Limits and refusals: STORAGE_MAX_FILE_SIZE (declared and streamed, chunked too), upload routes exempt from
MAX_REQUEST_BYTES while every other route keeps it, names, TUS, unknown routes, token kinds — each a clear error
in storage's shape that changes nothing."""
from __future__ import annotations

import socket
import uuid

import jwt
import pytest

from api.tokens import api_key
from db.storage import signing
from db.storage.urls import sign_mask_upload_url
from tests.support.auth import start_api
from tests.support.factories import create_user
from tests.support.storage import StorageHttp, png_bytes, unique

LIMIT = 2 * 1024 * 1024
REQUEST_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small_api(settings):
    """An API with a 2 MiB object limit and a 64 KiB MAX_REQUEST_BYTES, sharing the session's storage folder."""
    server = start_api(settings, storage_max_file_size=LIMIT, max_request_bytes=REQUEST_LIMIT,
                       storage_dir=settings.storage_dir)
    yield server
    server.stop()


@pytest.fixture
def small(small_api, settings, http) -> StorageHttp:
    return StorageHttp(f"{small_api.url}/storage/v1", api_key(settings, "anon"), api_key(settings, "service_role"),
                       http)


def count_objects(owner_conn, prefix: str) -> int:
    return owner_conn.execute("select count(*) from storage.objects where name like %s", (prefix + "%",)).fetchone()[0]


def chunked_upload(url: str, path: str, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, bytes]:
    """A raw HTTP/1.1 upload with `Transfer-Encoding: chunked` (no Content-Length), as a streaming fetch sends."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Transfer-Encoding: chunked", "Connection: close",
                *[f"{k}: {v}" for k, v in headers.items()], "", ""]
        sock.sendall("\r\n".join(head).encode())
        try:
            for chunk in chunks:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413) and closed before we finished sending
        answer = b""
        while data := sock.recv(65536):
            answer += data
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def test_uploads_are_exempt_from_max_request_bytes_but_bounded_by_the_object_limit(small, alice, owner_conn) -> None:
    folder = f"{alice.id}/{unique('lim')}"
    body = png_bytes(8, 8) + b"\0" * (REQUEST_LIMIT * 4)  # over MAX_REQUEST_BYTES, under the object limit
    assert small.upload("images", f"{folder}/ok.png", body, alice.access_token).status_code == 200
    too_big = small.upload("images", f"{folder}/big.png", b"\0" * (LIMIT + 1), alice.access_token)
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "EntityTooLarge" and str(LIMIT) in too_big.json()["message"]
    # every other route keeps MAX_REQUEST_BYTES
    listing = small.request("POST", "/object/list/images", alice.access_token,
                            json={"prefix": folder, "search": "x" * (REQUEST_LIMIT * 2)})
    assert listing.status_code == 413 and listing.json()["statusCode"] == "413"
    assert count_objects(owner_conn, folder) == 1


def test_chunked_upload_over_the_limit_is_refused_while_streaming(small, alice, owner_conn) -> None:
    folder = f"{alice.id}/{unique('chunk')}"
    headers = {**small.headers(alice.access_token), "Content-Type": "image/png"}
    status, _ = chunked_upload(small.url, f"/storage/v1/object/images/{folder}/ok.png", headers,
                               [b"\x89PNG" + b"\0" * 1000] * 10)
    assert status == 200
    status, body = chunked_upload(small.url, f"/storage/v1/object/images/{folder}/big.png", headers,
                                  [b"\0" * (256 * 1024)] * 12)
    assert status == 413 and b"EntityTooLarge" in body
    assert count_objects(owner_conn, folder) == 1
    multipart_big = small.request("POST", f"/object/images/{folder}/mp.png", alice.access_token,
                                  files={"": ("mp.png", b"\0" * (LIMIT + 10), "image/png")})
    assert multipart_big.status_code == 413


def test_signed_upload_route_is_bounded_too(small, alice) -> None:
    name = f"{alice.id}/{unique()}.png"
    token = small.request("POST", f"/object/upload/sign/images/{name}", alice.access_token).json()["token"]
    response = small.http.put(f"{small.url}/object/upload/sign/images/{name}?token={token}",
                              content=b"\0" * (LIMIT + 1), headers={"Content-Type": "image/png"})
    assert response.status_code == 413


# Percent-encoded as a raw client may send them (HTTP clients remove literal dot segments themselves).
@pytest.mark.parametrize("name", ["a/%2E%2E/b.png", "a/%2e/b.png", "a//b.png", "a/b%00.png", "a/%E2%80%AEb.png",
                                  "x" * 1100, "a/b/"])
def test_invalid_object_names_are_400(raw, alice, name, owner_conn) -> None:
    response = raw.upload("images", f"{alice.id}/{name}", b"\x89PNG", alice.access_token)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "InvalidKey"
    assert count_objects(owner_conn, f"{alice.id}/") == 0


def test_non_ascii_names_are_accepted(raw, alice, png) -> None:
    name = f"{alice.id}/{unique()}-façade 東京.png"
    assert raw.upload("images", name, png, alice.access_token).status_code == 200
    assert raw.download("images", name, alice.access_token).content == png


def test_tus_and_unknown_routes_answer_in_storage_shape(raw, alice) -> None:
    tus = raw.request("POST", "/upload/resumable", alice.access_token, headers={"Tus-Resumable": "1.0.0"})
    assert tus.status_code == 501 and tus.json()["code"] == "NotSupported" and "TUS" in tus.json()["message"]
    unknown = raw.request("GET", "/nothing/here", alice.access_token)
    assert unknown.status_code == 404 and set(unknown.json()) == {"statusCode", "code", "error", "message"}


def test_credentials_are_required_and_errors_name_them(raw, alice) -> None:
    response = raw.http.get(f"{raw.url}/object/authenticated/images/{alice.id}/x.png")
    assert response.status_code == 401 and response.json()["code"] == "InvalidJWT"
    bad = raw.http.get(f"{raw.url}/object/authenticated/images/{alice.id}/x.png",
                       headers={"apikey": raw.anon_key, "Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401 and bad.json()["statusCode"] == "401"


def test_each_token_kind_refuses_the_others(raw, settings, alice, png) -> None:
    name = f"{alice.id}/{unique()}.png"
    assert raw.upload("images", name, png, alice.access_token).status_code == 200
    download = signing.sign_download(settings, "images", name, 60)
    upload = signing.sign_upload(settings, "images", name, owner=alice.id, upsert=True)
    # an upload token is no download token, and the other way round
    as_download = raw.http.get(f"{raw.url}/object/sign/images/{name}?token={upload}")
    assert as_download.status_code == 400 and as_download.json()["code"] == "InvalidSignature"
    as_upload = raw.http.put(f"{raw.url}/object/upload/sign/images/{name}?token={download}", content=png,
                             headers={"Content-Type": "image/png"})
    assert as_upload.status_code == 400 and as_upload.json()["code"] == "InvalidSignature"
    # an access token or API key is neither, and neither URL token is an access token
    for token in (alice.access_token, raw.service_key):
        assert raw.http.get(f"{raw.url}/object/sign/images/{name}?token={token}").status_code == 400
    for token in (download, upload):
        refused = raw.http.get(f"{raw.url}/object/authenticated/images/{name}",
                               headers={"apikey": raw.anon_key, "Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
    # a download token for another object, and a forged one
    other = signing.sign_download(settings, "images", f"{alice.id}/other.png", 60)
    assert raw.http.get(f"{raw.url}/object/sign/images/{name}?token={other}").json()["code"] == "InvalidSignature"
    forged = jwt.encode({"url": f"images/{name}", "scope": "download", "exp": 4_000_000_000},
                        settings.jwt_secret.get_secret_value(), algorithm="HS256",
                        headers={"typ": signing.TOKEN_TYPES["download"]})
    assert raw.http.get(f"{raw.url}/object/sign/images/{name}?token={forged}").status_code == 400
    assert raw.http.get(f"{raw.url}/object/sign/images/{name}?token={download}").content == png


def test_expires_in_is_bounded_and_coerced(raw, alice, png, settings) -> None:
    name = f"{alice.id}/{unique()}.png"
    raw.upload("images", name, png, alice.access_token)
    ok = raw.request("POST", f"/object/sign/images/{name}", alice.access_token, json={"expiresIn": "60"})
    assert ok.status_code == 200 and ok.json()["signedURL"].startswith(f"/object/sign/images/{name}?token=")
    too_long = raw.request("POST", f"/object/sign/images/{name}", alice.access_token,
                           json={"expiresIn": settings.storage_signed_url_max_expiry_seconds + 1})
    assert too_long.status_code == 400 and too_long.json()["code"] == "InvalidParameter"
    nonsense = raw.request("POST", f"/object/sign/images/{name}", alice.access_token, json={"expiresIn": "soon"})
    assert nonsense.status_code == 400 and "expiresIn" in nonsense.json()["message"]


def test_mask_upload_url_is_refused_once_the_job_is_finished(raw, settings, owner_conn, png) -> None:
    user = create_user(settings, credits=10)
    result_id = str(uuid.uuid4())
    owner_conn.execute("insert into public.segmentation_results (id, user_id, source_image_url) values (%s, %s, %s)",
                       (result_id, user.id, "https://img.example/a.png"))
    signed = sign_mask_upload_url(settings, user_id=user.id, result_id=result_id)
    url = signed.url.replace(settings.public_url, raw.url.removesuffix("/storage/v1"))
    first = raw.http.put(url, content=png, headers={"Content-Type": "image/png"})
    assert first.status_code == 200, first.text
    assert raw.download("masks", signed.path, user.access_token).content == png
    owner_conn.execute("update public.segmentation_results set status = 'done' where id = %s", (result_id,))
    late = raw.http.put(url, content=png_bytes(5, 5), headers={"Content-Type": "image/png"})
    assert late.status_code == 403 and "done" in late.json()["message"]
    assert raw.download("masks", signed.path, user.access_token).content == png


def test_refusals_after_the_checks_leave_no_upload_intent(raw, alice, owner_conn) -> None:
    """The checks and the new blob's intent commit in one transaction before the body is read: a refusal after it
    (a declared length over the bucket's limit, a type the bucket does not take) forgets the intent at once, and a
    refusal by the checks themselves (RLS, a missing bucket) rolls it back with them."""
    bucket = unique("refuse")
    created = raw.request("POST", "/bucket", service=True, json={"id": bucket, "name": bucket, "file_size_limit": 1024,
                                                                 "allowed_mime_types": ["image/png"]})
    assert created.status_code == 200, created.text

    def intents() -> int:
        return owner_conn.execute("select count(*) from internal.storage_upload_intents where bucket_id = %s",
                                  (bucket,)).fetchone()[0]

    assert raw.upload(bucket, "big.png", b"\0" * 2048, service=True).status_code == 413
    assert raw.upload(bucket, "page.html", b"<p>hi</p>", service=True, content_type="text/html").status_code == 415
    assert raw.upload(bucket, "theirs.png", png_bytes(2, 2), alice.access_token).status_code == 403  # no policy
    assert raw.upload(unique("missing"), "x.png", png_bytes(2, 2), service=True).status_code == 404
    missing = raw.upload(unique("missing"), f"{alice.id}/x.png", png_bytes(2, 2), alice.access_token)
    assert missing.status_code == 404 and missing.json()["error"] == "Bucket not found"  # said before RLS's answer
    assert intents() == 0
    assert raw.upload(bucket, "ok.png", png_bytes(2, 2), service=True).status_code == 200
    assert intents() == 0  # claimed by the row
    assert owner_conn.execute("select count(*) from storage.objects where bucket_id = %s", (bucket,)).fetchone()[0] == 1
