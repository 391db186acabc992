"""What happens around the bytes: usage rows for uploads, masks and files following their result and user, the
janitor's ledgers, interrupted and abandoned uploads, concurrent uploads to one path, and the dispatch helpers."""
from __future__ import annotations

import socket
import threading
import uuid

import httpx
import pytest

from db.cleanup import NEVER, delete_expired_batch
from db.storage import janitor
from db.storage.backends import FileBackend
from db.storage.errors import StorageError
from db.storage.urls import (
    authenticated_object_url,
    parse_authenticated_object_url,
    sign_download_url_as_user,
)
from db.uow import Caller, unit_of_work
from tests.support.factories import create_user
from tests.support.processes import wait_for
from tests.support.storage import png_bytes, unique


@pytest.fixture
def backend(settings) -> FileBackend:
    return FileBackend(settings.storage_path)


def version_of(owner_conn, bucket: str, name: str) -> str | None:
    row = owner_conn.execute("select version from storage.objects where bucket_id = %s and name = %s",
                             (bucket, name)).fetchone()
    return row[0] if row else None


def queued_garbage(owner_conn) -> set[str]:
    return {v for (v,) in owner_conn.execute("select version from internal.storage_garbage").fetchall()}


def usage_rows(owner_conn, user_id: str) -> list[tuple]:
    return owner_conn.execute("select action::text, credits_used, metadata ->> 'name' from public.usage_logs "
                              "where user_id = %s and action = 'upload' order by created_at", (user_id,)).fetchall()


def test_a_users_upload_writes_one_usage_row_and_service_uploads_none(raw, owner_conn, settings, png) -> None:
    user = create_user(settings, credits=5)
    name = f"{user.id}/{unique()}.png"
    assert raw.upload("images", name, png, user.access_token).status_code == 200
    assert usage_rows(owner_conn, user.id) == [("upload", 0, name)]
    assert raw.upload("images", name, png, user.access_token, upsert=True).status_code == 200
    assert len(usage_rows(owner_conn, user.id)) == 2  # an overwrite is an upload too
    copy = raw.request("POST", "/object/copy", user.access_token,
                       json={"bucketId": "images", "sourceKey": name, "destinationKey": f"{user.id}/copy.png"})
    assert copy.status_code == 200 and len(usage_rows(owner_conn, user.id)) == 2  # a copy is not
    mask = f"{user.id}/{uuid.uuid4()}.png"
    assert raw.upload("masks", mask, png, service=True).status_code == 200
    assert len(usage_rows(owner_conn, user.id)) == 2


def test_uploads_are_charged_when_credits_per_upload_is_set(raw, owner_conn, settings, png) -> None:
    user = create_user(settings, credits=1)
    owner_conn.execute("update internal.config set value = '1' where key = 'credits_per_upload'")
    try:
        first = raw.upload("images", f"{user.id}/a.png", png, user.access_token)
        assert first.status_code == 200
        refused = raw.upload("images", f"{user.id}/b.png", png, user.access_token)
        assert refused.status_code == 402 and refused.json()["code"] == "InsufficientCredits"
    finally:
        owner_conn.execute("update internal.config set value = '0' where key = 'credits_per_upload'")
    assert owner_conn.execute("select credits from public.users_profile where id = %s", (user.id,)).fetchone()[0] == 0
    assert usage_rows(owner_conn, user.id) == [("upload", 1, f"{user.id}/a.png")]
    assert version_of(owner_conn, "images", f"{user.id}/b.png") is None


def test_deleting_a_result_deletes_its_mask_and_the_janitor_its_bytes(raw, owner_conn, settings, engine, backend,
                                                                       png) -> None:
    user = create_user(settings, credits=5)
    keep, doomed = str(uuid.uuid4()), str(uuid.uuid4())
    for result_id in (keep, doomed):
        owner_conn.execute("insert into public.segmentation_results (id, user_id, source_image_url, status) "
                           "values (%s, %s, 'https://img.example/a.png', 'pending')", (result_id, user.id))
        assert raw.upload("masks", f"{user.id}/{result_id}.png", png, service=True).status_code == 200
    doomed_version = version_of(owner_conn, "masks", f"{user.id}/{doomed}.png")
    owner_conn.execute("update public.segmentation_results set status = 'error' where id = %s", (doomed,))
    deleted = httpx.delete(f"{raw.url.removesuffix('/storage/v1')}/rest/v1/segmentation_results?id=eq.{doomed}",
                           headers=raw.headers(user.access_token))
    assert deleted.status_code in (200, 204), deleted.text
    assert version_of(owner_conn, "masks", f"{user.id}/{doomed}.png") is None
    assert version_of(owner_conn, "masks", f"{user.id}/{keep}.png") is not None
    assert backend.exists(doomed_version)  # bytes go with the janitor, after the row
    janitor.run_janitor(engine, backend, upload_timeout_seconds=3600)
    assert not backend.exists(doomed_version)
    assert backend.exists(version_of(owner_conn, "masks", f"{user.id}/{keep}.png"))


def test_deleting_a_user_deletes_their_objects(raw, owner_conn, settings, engine, backend, png) -> None:
    user = create_user(settings, credits=5)
    other = create_user(settings, credits=5)
    raw.upload("images", f"{user.id}/mine.png", png, user.access_token)
    raw.upload("masks", f"{user.id}/{uuid.uuid4()}.png", png, service=True)
    raw.upload("images", f"{other.id}/theirs.png", png, other.access_token)
    versions = [v for (v,) in owner_conn.execute(
        "select version from storage.objects where name like %s", (f"{user.id}/%",)).fetchall()]
    assert len(versions) == 2
    owner_conn.execute("delete from auth.users where id = %s", (user.id,))
    assert owner_conn.execute("select count(*) from storage.objects where name like %s or owner_id = %s",
                              (f"{user.id}/%", user.id)).fetchone()[0] == 0
    assert version_of(owner_conn, "images", f"{other.id}/theirs.png") is not None
    janitor.run_janitor(engine, backend, upload_timeout_seconds=3600)
    assert not any(backend.exists(v) for v in versions)


def test_cleanup_of_expired_results_removes_their_masks(raw, owner_conn, settings, engine, png) -> None:
    user = create_user(settings, credits=5)
    result_id = str(uuid.uuid4())
    owner_conn.execute("insert into public.segmentation_results (id, user_id, source_image_url, status, created_at) "
                       "values (%s, %s, 'https://img.example/a.png', 'pending', now() - interval '400 days')",
                       (result_id, user.id))
    owner_conn.execute("update public.segmentation_results set status = 'error' where id = %s", (result_id,))
    raw.upload("masks", f"{user.id}/{result_id}.png", png, service=True)
    # one batch of the cleanup job, as it runs it (service_role)
    with unit_of_work(engine, Caller.service()) as uow:
        deleted, _ = delete_expired_batch(uow, cursor=NEVER, batch_size=10_000)
    assert deleted >= 1
    assert version_of(owner_conn, "masks", f"{user.id}/{result_id}.png") is None


def test_an_interrupted_upload_leaves_no_object_and_no_orphan(raw, owner_conn, settings, engine, backend,
                                                              storage_url, alice) -> None:
    name = f"{alice.id}/{unique()}.png"
    host, port = storage_url.removeprefix("http://").split("/")[0].split(":")

    def intents() -> set[str]:
        # This upload's intents only: other tests leave some (an abandoned one, on purpose) in the same database.
        return {str(row[0]) for row in owner_conn.execute(
            "select version from internal.storage_upload_intents where bucket_id = 'images'")} - earlier

    earlier: set[str] = set()
    earlier = intents()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (f"POST /storage/v1/object/images/{name} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
                f"apikey: {raw.anon_key}\r\nAuthorization: Bearer {alice.access_token}\r\n"
                f"Content-Length: 10000000\r\n\r\n")
        sock.sendall(head.encode() + b"\0" * 3_000_000)
        wait_for(lambda: bool(intents()), timeout=30, message="the upload to start writing")
    # the client vanished mid-body: the request fails, its blob and intent are removed
    wait_for(lambda: not intents(), timeout=30, message="the failed upload to remove its intent")
    assert version_of(owner_conn, "images", name) is None
    assert backend.writes_in_progress() == 0


def test_abandoned_upload_is_removed_and_its_late_row_refused(owner_conn, settings, engine, backend) -> None:
    version = str(uuid.uuid4())
    janitor.announce_upload(engine, version=version, bucket_id="masks")
    writer = backend.writer(version)
    writer.write(b"half")
    writer.commit()
    owner_conn.execute("update internal.storage_upload_intents set created_at = now() - interval '2 hours' "
                       "where version = %s", (version,))
    counts = janitor.run_janitor(engine, backend, upload_timeout_seconds=3600)
    assert counts.abandoned >= 1 and not backend.exists(version)
    # an intent abandoned while its upload still ran refuses the row that upload commits at last
    late = str(uuid.uuid4())
    janitor.announce_upload(engine, version=late, bucket_id="masks")
    owner_conn.execute("update internal.storage_upload_intents set state = 'abandoned' where version = %s", (late,))
    with pytest.raises(Exception, match="abandoned"):
        with unit_of_work(engine, Caller.service()) as uow:
            uow.execute("insert into storage.objects (bucket_id, name, version, metadata) "
                        "values ('masks', :name, :version, '{}')", {"name": f"late/{late}.png", "version": late})


def test_concurrent_uploads_to_one_path_have_one_winner_and_intact_bytes(raw, alice, owner_conn, engine,
                                                                         backend) -> None:
    name = f"{alice.id}/{unique('race')}.png"
    bodies = [png_bytes(8, 8, (i, i, i)) + bytes([i]) * 200_000 for i in range(8)]
    statuses: list[int] = []

    def put(body: bytes) -> None:
        statuses.append(raw.upload("images", name, body, alice.access_token, upsert=True).status_code)

    threads = [threading.Thread(target=put, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(bodies)
    served = raw.download("images", name, alice.access_token).content
    assert served in bodies
    stored = owner_conn.execute("select metadata ->> 'size' from storage.objects where bucket_id = 'images' "
                                "and name = %s", (name,)).fetchone()[0]
    assert int(stored) == len(served)
    janitor.run_janitor(engine, backend, upload_timeout_seconds=3600)
    live = version_of(owner_conn, "images", name)
    referenced = {v for (v,) in owner_conn.execute("select version from storage.objects").fetchall()}
    assert live in referenced and set(backend.versions()) <= referenced | queued_garbage(owner_conn)
    # without upsert: exactly one of the racers wins, the others are told 409
    fresh = f"{alice.id}/{unique('race')}.png"
    codes: list[int] = []
    racers = [threading.Thread(target=lambda b=b: codes.append(
        raw.upload("images", fresh, b, alice.access_token).status_code)) for b in bodies[:4]]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join()
    assert sorted(codes) == [200, 409, 409, 409]


def test_dispatch_helpers_sign_only_what_the_user_may_read(raw, engine, settings, alice, bob, png) -> None:
    name = f"{alice.id}/{unique()}.png"
    raw.upload("images", name, png, alice.access_token)
    url = authenticated_object_url(settings, "images", name)
    assert url == f"{settings.public_url}/storage/v1/object/authenticated/images/{name}"
    assert parse_authenticated_object_url(settings, url) == ("images", name)
    assert parse_authenticated_object_url(settings, url.replace("http://", "https://")) == ("images", name)
    for other in (url + "?x=1", url.replace("/authenticated/", "/public/"), "https://cdn.example/a.png",
                  url.replace(name, "a/../b.png")):
        assert parse_authenticated_object_url(settings, other) is None
    signed = sign_download_url_as_user(engine, settings, user_id=alice.id, bucket="images", name=name, expires_in=60)
    served = httpx.get(signed.replace(settings.public_url, raw.url.removesuffix("/storage/v1")))
    assert served.content == png
    with pytest.raises(StorageError) as refused:
        sign_download_url_as_user(engine, settings, user_id=bob.id, bucket="images", name=name, expires_in=60)
    assert refused.value.status == 404
