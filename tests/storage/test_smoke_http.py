"""Raw /storage/v1 requests: the upload → info → download → remove round trip in the images bucket."""
from __future__ import annotations

from tests.support.storage import unique


def test_upload_download_round_trip(raw, alice, png) -> None:
    name = f"{alice.id}/{unique()}.png"
    up = raw.upload("images", name, png, alice.access_token)
    assert up.status_code == 200, up.text
    assert up.json()["Key"] == f"images/{name}"
    down = raw.download("images", name, alice.access_token)
    assert down.status_code == 200, down.text
    assert down.content == png
    assert down.headers["X-Content-Type-Options"] == "nosniff"
    info = raw.request("GET", f"/object/info/images/{name}", alice.access_token)
    assert info.status_code == 200 and info.json()["size"] == len(png)
    gone = raw.request("DELETE", "/object/images", alice.access_token, json={"prefixes": [name]})
    assert gone.status_code == 200 and [row["name"] for row in gone.json()] == [name]
    missing = raw.request("GET", f"/object/info/images/{name}", alice.access_token)
    assert missing.status_code == 404
    assert missing.json() == {"statusCode": "404", "code": "NoSuchKey", "error": "not_found",
                              "message": "Object not found"}
