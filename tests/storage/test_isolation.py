"""User B against user A's object on every /storage/v1 route: nothing is read, listed, signed, copied, moved,
overwritten or removed, and A's bytes stay as they were (supabase-js covers the common routes; this is the rest)."""
from __future__ import annotations

import hashlib

from tests.support.storage import png_bytes, unique


def test_another_user_reaches_an_object_by_no_route(raw, alice, bob, owner_conn) -> None:
    name = f"{alice.id}/{unique('mine')}.png"
    body = png_bytes(24, 24)
    assert raw.upload("images", name, body, alice.access_token).status_code == 200
    token = bob.access_token
    theirs = f"{bob.id}/{unique('taken')}.png"

    refused = {
        "GET object": raw.request("GET", f"/object/images/{name}", token),
        "HEAD object": raw.request("HEAD", f"/object/images/{name}", token),
        "GET authenticated": raw.request("GET", f"/object/authenticated/images/{name}", token),
        "GET public": raw.request("GET", f"/object/public/images/{name}", token),
        "GET info": raw.request("GET", f"/object/info/images/{name}", token),
        "GET info authenticated": raw.request("GET", f"/object/info/authenticated/images/{name}", token),
        "GET info public": raw.request("GET", f"/object/info/public/images/{name}", token),
        "GET render": raw.request("GET", f"/render/image/authenticated/images/{name}?width=8", token),
        "GET render public": raw.request("GET", f"/render/image/public/images/{name}?width=8", token),
        "POST sign": raw.request("POST", f"/object/sign/images/{name}", token, json={"expiresIn": 60}),
        "POST upload sign": raw.request("POST", f"/object/upload/sign/images/{name}", token),
        "POST upsert": raw.upload("images", name, b"\x89PNG overwritten", token, upsert=True),
        "PUT update": raw.upload("images", name, b"\x89PNG overwritten", token, method="PUT"),
        "POST move": raw.request("POST", "/object/move", token, json={
            "bucketId": "images", "sourceKey": name, "destinationKey": theirs}),
        "POST copy": raw.request("POST", "/object/copy", token, json={
            "bucketId": "images", "sourceKey": name, "destinationKey": theirs}),
    }
    for route, response in refused.items():
        assert 400 <= response.status_code < 500, (route, response.status_code, response.text[:300])
        assert body not in response.content, route

    signed_many = raw.request("POST", "/object/sign/images", token, json={"expiresIn": 60, "paths": [name]})
    assert signed_many.status_code >= 400 or all(entry.get("signedURL") is None for entry in signed_many.json())
    listed = raw.request("POST", "/object/list/images", token, json={"prefix": f"{alice.id}/", "limit": 100})
    assert listed.status_code == 200 and listed.json() == []
    removed = raw.request("DELETE", "/object/images", token, json={"prefixes": [name]})
    assert removed.status_code == 200 and removed.json() == []

    mine = raw.download("images", name, alice.access_token)
    assert mine.status_code == 200 and hashlib.sha256(mine.content).digest() == hashlib.sha256(body).digest()
    assert owner_conn.execute("select count(*) from storage.objects where bucket_id = 'images' and name = %s",
                              (theirs,)).fetchone()[0] == 0
