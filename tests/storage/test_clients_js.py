"""supabase-js 2.119.0's storage client against the live API: uploads of Blobs (multipart) and Buffers (raw),
upsert, download, info, exists, list, move/copy, signed URLs, signed uploads, transforms, public buckets, limits,
bucket management, and another user's attempts on every route."""
from __future__ import annotations

import base64
import hashlib

import pytest

from tests.support.storage import run_node

pytestmark = [pytest.mark.node]


def test_supabase_js_storage(api_server, alice, bob, anon_key, service_key, png) -> None:
    check_supabase_js_storage(api_server, alice, bob, anon_key, service_key, png)


def check_supabase_js_storage(api_server, alice, bob, anon_key, service_key, png) -> None:
    """Every flow of tests/node/storage_flows.mjs against `api_server` (tests/storage/test_s3.py runs it on S3)."""
    out = run_node("storage_flows.mjs", {
        "url": api_server.url, "anonKey": anon_key, "serviceKey": service_key, "userToken": alice.access_token,
        "otherToken": bob.access_token, "userId": alice.id, "otherId": bob.id,
        "pngBase64": base64.b64encode(png).decode()})
    digest = hashlib.sha256(png).hexdigest()
    assert out["pngSha"] == digest
    assert out["uploadBlob"]["error"] is None and out["uploadBlob"]["data"]["fullPath"].startswith("images/")
    assert out["uploadBuffer"]["error"] is None and out["uploadBuffer"]["data"]["id"]
    assert out["duplicate"]["error"]["statusCode"] == "409"
    assert out["upsert"]["error"] is None and out["update"]["error"] is None
    assert out["wrongType"]["error"]["statusCode"] == "415"
    assert out["download"] == {"sha": digest, "type": "image/png", "error": None}
    info = out["info"]["data"]
    assert info["size"] == len(png) and info["contentType"] == "image/png" and info["metadata"] == {"job": "43"}
    assert info["cacheControl"] == "max-age=60"
    assert out["exists"]["data"] is True and out["missing"]["data"] is False  # js returns its NoSuchKey error beside false
    assert out["missing"]["error"]["code"] == "NoSuchKey"
    assert out["missingDownload"]["error"]["statusCode"] == "404"
    assert [entry["name"] for entry in out["list"]["data"]] == ["blob.png", "buffer.png"]
    assert [entry["name"] for entry in out["listSearch"]["data"]] == ["blob.png"]
    assert out["move"]["error"] is None and out["copy"]["error"] is None
    assert out["copyDownload"]["sha"] == digest
    assert out["signed"]["data"]["signedUrl"].startswith(f"{api_server.url}/storage/v1/object/sign/images/")
    assert out["signedFetch"] == digest
    many = out["signedMany"]["data"]
    assert many[0]["signedUrl"] and many[0]["error"] is None and many[1]["signedUrl"] is None and many[1]["error"]
    assert out["signedUpload"]["data"]["token"] and out["uploadToSigned"]["error"] is None
    assert out["signedUploadDownload"]["sha"] == digest
    assert out["transformed"]["error"] is None and out["transformed"]["type"].startswith("image/")
    # another user: cannot read, list, sign, overwrite, remove or move the object
    assert out["otherDownload"]["error"]["statusCode"] == "404"
    assert out["otherList"] == {"data": [], "error": None}
    assert out["otherSign"]["error"]["statusCode"] == "404"
    assert out["otherUpsert"]["error"]["statusCode"] == "403"
    assert out["otherRemove"] == {"data": [], "error": None}
    assert out["otherMove"]["error"]["statusCode"] == "404"
    assert out["afterOther"]["sha"] == digest
    # buckets
    assert out["createBucket"]["error"] is None and out["getBucket"]["data"]["file_size_limit"] == 1_000_000
    assert out["publicFetch"] == digest
    assert out["tooLarge"]["error"]["statusCode"] == "413"
    assert out["userCreateBucket"]["error"]["statusCode"] == "403"
    assert out["deleteNonEmpty"]["error"]["statusCode"] == "409"
    assert out["emptyBucket"]["error"] is None and out["deleteBucket"]["error"] is None
    assert len(out["remove"]["data"]) == 4 and out["listAfter"]["data"] == []
