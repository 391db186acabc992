"""Raw HTTP details the clients and browsers rely on: ranges, ETag/304, `download`, HEAD, CORS, the render route's
bounds and cache, and multipart as each client sends it."""
from __future__ import annotations

import io
import socket

import pytest
from PIL import Image

from api.tokens import api_key
from tests.support.auth import start_api
from tests.support.storage import png_bytes, unique


def test_range_etag_and_download_headers(raw, alice) -> None:
    name = f"{alice.id}/{unique()}.png"
    body = png_bytes(20, 20) + bytes(range(256)) * 40
    raw.upload("images", name, body, alice.access_token)
    full = raw.download("images", name, alice.access_token)
    etag = full.headers["ETag"]
    assert full.headers["Content-Length"] == str(len(body)) and full.headers["Accept-Ranges"] == "bytes"
    assert full.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    part = raw.download("images", name, alice.access_token, headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == body[5:15]
    assert part.headers["Content-Range"] == f"bytes 5-14/{len(body)}"
    suffix = raw.download("images", name, alice.access_token, headers={"Range": "bytes=-4"})
    assert suffix.status_code == 206 and suffix.content == body[-4:]
    beyond = raw.download("images", name, alice.access_token, headers={"Range": f"bytes={len(body) + 10}-"})
    assert beyond.status_code == 416 and beyond.json()["code"] == "InvalidRange"
    cached = raw.download("images", name, alice.access_token, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    attachment = raw.request("GET", f"/object/authenticated/images/{name}?download=my%20pic.png", alice.access_token)
    assert attachment.headers["Content-Disposition"] == (
        "attachment; filename=my%20pic.png; filename*=UTF-8''my%20pic.png")
    head = raw.request("HEAD", f"/object/images/{name}", alice.access_token)
    assert head.status_code == 200 and head.content == b"" and head.headers["Content-Length"] == str(len(body))
    missing = raw.request("HEAD", f"/object/images/{alice.id}/none.png", alice.access_token)
    assert missing.status_code == 404  # Flutter's exists(): false for 400 or 404


def test_cors_preflight_allows_the_storage_headers(raw) -> None:
    response = raw.http.options(f"{raw.url}/object/images/a/b.png", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, apikey, x-upsert, content-type"})
    assert response.status_code == 200
    allowed = response.headers["Access-Control-Allow-Headers"]
    assert all(h in allowed for h in ("x-upsert", "cache-control", "x-metadata"))


def test_multipart_dialects_of_each_client(raw, alice, png) -> None:
    folder = f"{alice.id}/{unique('mp')}"
    # storage-js: field "" with the Blob's type; storage3: field "file" with content-type; Flutter: filename = a path
    for field, filename, part_type, name in (("", "blob", "image/png", "js.png"),
                                             ("file", "py.png", "image/png", "py.png"),
                                             ("", "/data/user/0/app/cache/f.png", "image/png", "dart.png")):
        response = raw.request("POST", f"/object/images/{folder}/{name}", alice.access_token,
                               data={"cacheControl": "30"}, files={field: (filename, png, part_type)})
        assert response.status_code == 200, response.text
        info = raw.request("GET", f"/object/info/images/{folder}/{name}", alice.access_token).json()
        assert (info["content_type"], info["cache_control"], info["size"]) == ("image/png", "max-age=30", len(png))
    # a contentType field before the file wins over the part's type
    typed = raw.request("POST", f"/object/images/{folder}/typed.png", alice.access_token,
                        data={"contentType": "image/webp"}, files={"": ("x", png, "application/octet-stream")})
    assert typed.status_code == 200
    info = raw.request("GET", f"/object/info/images/{folder}/typed.png", alice.access_token).json()
    assert info["content_type"] == "image/webp"


def test_render_route_transforms_caches_and_bounds(raw, alice) -> None:
    name = f"{alice.id}/{unique()}.png"
    raw.upload("images", name, png_bytes(300, 100), alice.access_token)
    url = f"/render/image/authenticated/images/{name}?width=60&height=60&resize=cover&format=png"
    first = raw.request("GET", url, alice.access_token)
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(first.content)).size == (60, 60)
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    again = raw.request("GET", url, alice.access_token, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    fill = raw.request("GET", f"/render/image/authenticated/images/{name}?width=5000&resize=fill&format=jpeg",
                       alice.access_token)
    assert Image.open(io.BytesIO(fill.content)).size == (2500, 833)  # clamped to 2500
    webp = raw.request("GET", f"/render/image/authenticated/images/{name}?width=30", alice.access_token,
                       headers={"Accept": "image/webp,*/*"})
    assert webp.headers["Content-Type"] == "image/webp"
    bad = raw.request("GET", f"/render/image/authenticated/images/{name}?resize=squash", alice.access_token)
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameter"
    text = f"{alice.id}/{unique()}.png"
    raw.upload("images", text, b"not an image at all", alice.access_token)
    refused = raw.request("GET", f"/render/image/authenticated/images/{text}?width=10", alice.access_token)
    assert refused.status_code == 422
    truncated = f"{alice.id}/{unique()}.png"
    raw.upload("images", truncated, png_bytes(50, 50)[:70], alice.access_token)
    broken = raw.request("GET", f"/render/image/authenticated/images/{truncated}?width=10", alice.access_token)
    assert broken.status_code == 422 and broken.json()["code"] == "InvalidRequest"
    signed = raw.request("POST", f"/object/sign/images/{name}", alice.access_token,
                         json={"expiresIn": 60, "transform": {"width": "40", "height": "20"}}).json()["signedURL"]
    assert signed.startswith("/render/image/sign/")
    rendered = raw.http.get(f"{raw.url}{signed}&width=999")  # the token's transform wins over the query
    assert Image.open(io.BytesIO(rendered.content)).size == (40, 20)


def test_render_refuses_images_over_the_pixel_bound(settings, http, alice) -> None:
    server = start_api(settings, storage_render_max_pixels=10_000, storage_dir=settings.storage_dir)
    try:
        headers = {"apikey": api_key(settings, "anon"), "Authorization": f"Bearer {alice.access_token}"}
        name = f"{alice.id}/{unique()}.png"
        http.post(f"{server.url}/storage/v1/object/images/{name}", content=png_bytes(200, 200),
                  headers={**headers, "Content-Type": "image/png"}).raise_for_status()
        big = http.get(f"{server.url}/storage/v1/render/image/authenticated/images/{name}?width=10", headers=headers)
        assert big.status_code == 413 and "pixels" in big.json()["message"]
    finally:
        server.stop()


def test_large_objects_arrive_whole_from_any_offset_and_the_connection_stays_usable(raw, alice) -> None:
    """A download read to the object's end leaves through the server's file sender (os.sendfile under `segbase
    api`), a bounded range through the chunked path: both give exactly the stored bytes, larger than any socket
    buffer, and the kept-alive connection serves the next request."""
    name = f"{alice.id}/{unique('large')}.png"
    body = png_bytes(8, 8) + b"".join(index.to_bytes(4, "big") for index in range(3 * 1024 * 1024))  # ~12 MiB
    assert raw.upload("images", name, body, alice.access_token).status_code == 200
    full = raw.download("images", name, alice.access_token)
    assert full.status_code == 200 and full.content == body
    tail = raw.download("images", name, alice.access_token, headers={"Range": "bytes=5000001-"})
    assert tail.status_code == 206 and tail.content == body[5000001:]
    middle = raw.download("images", name, alice.access_token, headers={"Range": "bytes=7-9000006"})
    assert middle.status_code == 206 and middle.content == body[7:9000007]
    again = raw.download("images", name, alice.access_token, headers={"Range": "bytes=0-3"})
    assert again.status_code == 206 and again.content == body[:4]


@pytest.mark.parametrize("padding", [0, 64 * 1024])
def test_a_request_pipelined_behind_an_upload_is_served_after_it(raw, alice, padding) -> None:
    """The upload reads exactly its Content-Length from the connection: bytes the client sent after it (its next
    request, received with the upload's head when the body is small) are the next request, answered in turn."""
    name = f"{alice.id}/{unique('pipelined')}.png"
    body = png_bytes(4, 4) + bytes(range(256)) * (padding // 256)
    host, port = raw.url.removeprefix("http://").split("/")[0].split(":")
    upload = (f"POST /storage/v1/object/images/{name} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
              f"apikey: {raw.anon_key}\r\nAuthorization: Bearer {alice.access_token}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    follow = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(upload + follow)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    upload_answer, _, follow_answer = answer.partition(b"HTTP/1.1 200 OK\r\n")[2].partition(b"HTTP/1.1 ")
    assert b'"Key":"images/' in upload_answer and follow_answer.startswith(b"200 OK"), answer[:2000]
    assert follow_answer.endswith(b'{"status":"ok"}\n'), answer[:2000]
    assert raw.download("images", name, alice.access_token).content == body
