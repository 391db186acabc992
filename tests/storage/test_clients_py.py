"""storage3 2.34.1 (supabase-py's storage client) against the live API: both app buckets' policies, upsert, list,
move/copy, remove, signed URLs and their expiry, signed uploads, public buckets, limits, errors and exists()."""
from __future__ import annotations

import io
import time
import uuid

import httpx
import pytest
from PIL import Image
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError

from tests.support.storage import png_bytes, unique


def client_for(storage_url: str, apikey: str, token: str | None = None) -> SyncStorageClient:
    """Headers as supabase-py sends them (`apiKey`, Bearer session token or the key)."""
    return SyncStorageClient(f"{storage_url}/", {"apiKey": apikey, "Authorization": f"Bearer {token or apikey}"})


@pytest.fixture
def alice_storage(storage_url, anon_key, alice):
    with client_for(storage_url, anon_key, alice.access_token) as client:
        yield client


@pytest.fixture
def service_storage(storage_url, service_key):
    with client_for(storage_url, service_key) as client:
        yield client


def test_upload_download_info_exists_in_own_images_folder(alice_storage, alice, png) -> None:
    images = alice_storage.from_("images")
    path = f"{alice.id}/{unique()}.png"
    uploaded = images.upload(path, png, {"content-type": "image/png", "cache-control": "120"})
    assert uploaded.path == path and uploaded.full_path == f"images/{path}"
    assert images.download(path) == png
    info = images.info(path)
    assert info["size"] == len(png) and info["content_type"] == "image/png"
    assert info["cache_control"] == "max-age=120" and info["version"]
    assert images.exists(path) is True
    assert images.exists(f"{alice.id}/{unique()}.png") is False


def test_missing_object_and_bucket_errors_parse(alice_storage, alice) -> None:
    with pytest.raises(StorageApiError) as missing:
        alice_storage.from_("images").download(f"{alice.id}/nothing-here.png")
    assert (missing.value.status, missing.value.code, missing.value.message) == ("404", "not_found", "Object not found")
    with pytest.raises(StorageApiError) as no_bucket:
        alice_storage.from_("no-such-bucket").info("x.png")
    assert (no_bucket.value.status, no_bucket.value.code) == ("404", "Bucket not found")


def test_images_policy_allows_only_the_users_own_folder(alice_storage, bob, png) -> None:
    with pytest.raises(StorageApiError) as denied:
        alice_storage.from_("images").upload(f"{bob.id}/{unique()}.png", png, {"content-type": "image/png"})
    assert denied.value.status == "403" and "row-level security" in denied.value.message
    with pytest.raises(StorageApiError) as root:
        alice_storage.from_("images").upload(f"{unique()}.png", png, {"content-type": "image/png"})
    assert root.value.status == "403"


def test_masks_are_written_by_service_role_and_read_by_their_owner(alice_storage, service_storage, alice, bob,
                                                                   storage_url, anon_key, png) -> None:
    path = f"{alice.id}/{uuid.uuid4()}.png"
    with pytest.raises(StorageApiError) as user_write:
        alice_storage.from_("masks").upload(path, png, {"content-type": "image/png"})
    assert user_write.value.status == "403"
    service_storage.from_("masks").upload(path, png, {"content-type": "image/png"})
    assert alice_storage.from_("masks").download(path) == png
    with client_for(storage_url, anon_key, bob.access_token) as bob_storage:
        assert bob_storage.from_("masks").exists(path) is False


def test_upload_without_upsert_conflicts_and_upsert_replaces(alice_storage, alice) -> None:
    images = alice_storage.from_("images")
    path = f"{alice.id}/{unique()}.png"
    first, second = png_bytes(10, 10, (1, 2, 3)), png_bytes(20, 20, (4, 5, 6))
    images.upload(path, first, {"content-type": "image/png"})
    with pytest.raises(StorageApiError) as duplicate:
        images.upload(path, second, {"content-type": "image/png"})
    assert (duplicate.value.status, duplicate.value.code) == ("409", "Duplicate")
    images.upload(path, second, {"content-type": "image/png", "upsert": "true"})
    assert images.download(path) == second
    third = png_bytes(30, 30)
    images.update(path, third, {"content-type": "image/png"})
    assert images.download(path) == third


def test_list_is_one_level_with_folders_search_and_paging(alice_storage, alice, png) -> None:
    images = alice_storage.from_("images")
    base = f"{alice.id}/{unique('list')}"
    for name in ("b.png", "a.png", "C.png", "sub/x.png", "sub/deeper/y.png", "other/z.png"):
        images.upload(f"{base}/{name}", png, {"content-type": "image/png"})
    listed = images.list(base)
    assert [entry["name"] for entry in listed] == ["a.png", "b.png", "C.png", "other", "sub"]
    folders = {entry["name"]: entry for entry in listed if entry["id"] is None}
    assert set(folders) == {"other", "sub"} and folders["sub"]["metadata"] is None
    files = [entry for entry in listed if entry["id"]]
    assert all(entry["metadata"]["size"] == len(png) for entry in files)
    assert [e["name"] for e in images.list(base, {"search": "b"})] == ["b.png"]
    page = images.list(base, {"limit": 2, "offset": 1, "sortBy": {"column": "name", "order": "desc"}})
    assert [entry["name"] for entry in page] == ["other", "C.png"]
    assert [e["name"] for e in images.list(f"{base}/sub")] == ["deeper", "x.png"]


def test_move_copy_and_remove(alice_storage, alice, png) -> None:
    images = alice_storage.from_("images")
    base = f"{alice.id}/{unique('mv')}"
    images.upload(f"{base}/one.png", png, {"content-type": "image/png"})
    assert images.move(f"{base}/one.png", f"{base}/two.png")["message"] == "Successfully moved"
    assert images.exists(f"{base}/one.png") is False
    copied = images.copy(f"{base}/two.png", f"{base}/three.png")
    assert copied["Key"] == f"images/{base}/three.png"
    assert images.download(f"{base}/three.png") == png
    removed = images.remove([f"{base}/two.png", f"{base}/three.png", f"{base}/never.png"])
    assert sorted(row["name"] for row in removed) == [f"{base}/three.png", f"{base}/two.png"]
    assert images.list(base) == []


def test_signed_urls_work_without_credentials_and_expire(alice_storage, alice, png) -> None:
    images = alice_storage.from_("images")
    path = f"{alice.id}/{unique()}.png"
    images.upload(path, png, {"content-type": "image/png"})
    signed = images.create_signed_url(path, 60)["signedURL"]
    assert httpx.get(signed).content == png
    downloaded = httpx.get(images.create_signed_url(path, 60, {"download": "pic.png"})["signedURL"])
    assert downloaded.headers["Content-Disposition"].startswith("attachment; filename=pic.png")
    short = images.create_signed_url(path, 1)["signedURL"]
    time.sleep(7)  # past the 1 s lifetime and the verifier's 5 s clock-skew leeway
    expired = httpx.get(short)
    assert expired.status_code == 400 and expired.json()["code"] == "ExpiredToken"
    many = images.create_signed_urls([path, f"{alice.id}/missing.png"], 60)
    assert many[0]["error"] is None and httpx.get(many[0]["signedURL"]).content == png
    assert many[1]["signedURL"] is None and many[1]["error"]


def test_signed_upload_url_uploads_as_its_creator(alice_storage, alice, png, owner_conn) -> None:
    images = alice_storage.from_("images")
    path = f"{alice.id}/{unique()}.png"
    signed = images.create_signed_upload_url(path)
    response = images.upload_to_signed_url(path, signed["token"], png, {"content-type": "image/png"})
    assert response.full_path == f"images/{path}"
    assert images.download(path) == png
    owner = owner_conn.execute("select owner_id from storage.objects where bucket_id = 'images' and name = %s",
                               (path,)).fetchone()[0]
    assert owner == alice.id
    with pytest.raises(StorageApiError) as again:  # the token does not upsert
        images.upload_to_signed_url(path, signed["token"], png, {"content-type": "image/png"})
    assert again.value.status == "409"


def test_public_bucket_serves_without_credentials(service_storage, png) -> None:
    bucket = unique("pub")
    service_storage.create_bucket(bucket, options={"public": True})
    files = service_storage.from_(bucket)
    files.upload("logo.png", png, {"content-type": "image/png"})
    url = files.get_public_url("logo.png")
    assert httpx.get(url).content == png
    service_storage.update_bucket(bucket, {"public": False})
    assert httpx.get(url).status_code == 404
    service_storage.empty_bucket(bucket)
    service_storage.delete_bucket(bucket)


def test_bucket_management_as_service_role_and_refused_to_users(service_storage, alice_storage) -> None:
    bucket = unique("bkt")
    assert service_storage.create_bucket(bucket, options={"public": False, "file_size_limit": "1MB",
                                                           "allowed_mime_types": ["image/png"]})["name"] == bucket
    got = service_storage.get_bucket(bucket)
    assert (got.id, got.public, got.file_size_limit, got.allowed_mime_types, got.owner) == (
        bucket, False, 1_000_000, ["image/png"], "")
    assert bucket in [b.id for b in service_storage.list_buckets()]
    service_storage.update_bucket(bucket, {"public": True, "file_size_limit": 2048})
    assert service_storage.get_bucket(bucket).file_size_limit == 2048
    with pytest.raises(StorageApiError) as duplicate:
        service_storage.create_bucket(bucket)
    assert duplicate.value.status == "409"
    with pytest.raises(StorageApiError) as user_create:
        alice_storage.create_bucket(unique("mine"))
    assert user_create.value.status == "403"
    assert [b.id for b in alice_storage.list_buckets()] == []  # no policy lets users see buckets
    service_storage.from_(bucket).upload("f.png", png_bytes(), {"content-type": "image/png"})
    with pytest.raises(StorageApiError) as not_empty:
        service_storage.delete_bucket(bucket)
    assert not_empty.value.status == "409"
    service_storage.empty_bucket(bucket)
    service_storage.delete_bucket(bucket)
    with pytest.raises(StorageApiError) as gone:
        service_storage.get_bucket(bucket)
    assert gone.value.status == "404"


def test_bucket_limits_refuse_large_and_wrong_type_uploads(service_storage) -> None:
    bucket = unique("lim")
    service_storage.create_bucket(bucket, options={"file_size_limit": 1000, "allowed_mime_types": ["image/*"]})
    files = service_storage.from_(bucket)
    with pytest.raises(StorageApiError) as large:
        files.upload("big.png", b"\0" * 5000, {"content-type": "image/png"})
    assert (large.value.status, large.value.code) == ("413", "Payload too large")
    with pytest.raises(StorageApiError) as wrong_type:
        files.upload("page.txt", b"hello")  # storage3's default type is text/plain;charset=UTF-8
    assert wrong_type.value.status == "415" and "text/plain" in wrong_type.value.message
    files.upload("ok.webp", b"x" * 10, {"content-type": "image/webp"})
    assert [entry["name"] for entry in files.list()] == ["ok.webp"]
    service_storage.empty_bucket(bucket)
    service_storage.delete_bucket(bucket)


def test_transformed_download(alice_storage, alice) -> None:
    images = alice_storage.from_("images")
    path = f"{alice.id}/{unique()}.png"
    images.upload(path, png_bytes(400, 200), {"content-type": "image/png"})
    data = images.download(path, {"transform": {"width": 100, "height": 100, "resize": "contain"}})
    assert Image.open(io.BytesIO(data)).size == (100, 50)
