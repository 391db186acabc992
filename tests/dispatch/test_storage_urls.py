"""A job's URLs and segbase storage: an image in storage is signed only if the job's owner may read it (checked as
the owner), so user A pointing a job at user B's image gets it refused — the backend never receives a URL for it,
by push or by pull — and the job ends error with its reservation released. The mask upload URL writes
masks/<user>/<job>.png and is refused once the job is finished."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from api.tokens import api_key
from db.storage.urls import authenticated_object_url
from schemas.settings import Settings
from tests.support.dispatch import SECRET, job, processes, push_settings, reserved, result, submit
from tests.support import factories
from tests.support.factories import create_user
from tests.support.receiver import Receiver
from tests.support.storage import StorageHttp, png_bytes, unique

KEY = {"X-API-Key": "test-webhook-key"}


@pytest.fixture
def storage(dispatch_settings: Settings, dispatch_api) -> Iterator[StorageHttp]:
    with httpx.Client(timeout=60) as http:
        yield StorageHttp(f"{dispatch_api.url}/storage/v1", api_key(dispatch_settings, "anon"),
                          api_key(dispatch_settings, "service_role"), http)


def uploaded_image(settings: Settings, storage: StorageHttp, user: factories.TestUser) -> tuple[str, bytes]:
    """An image the user uploads to their folder of `images`; returns its authenticated URL and its bytes."""
    name = f"{user.id}/{unique('img')}.png"
    data = png_bytes(24, 24, (240, 240, 240))
    response = storage.upload("images", name, data, user.access_token)
    assert response.status_code == 200, response.text
    return authenticated_object_url(settings, "images", name), data


def test_pull_signs_the_owners_image_and_refuses_another_users(dispatch_settings, dispatch_engine, dispatch_api,
                                                                 storage, db):
    alice, bob = create_user(dispatch_settings, credits=5), create_user(dispatch_settings, credits=5)
    own_url, own_bytes = uploaded_image(dispatch_settings, storage, alice)
    bobs_url, _ = uploaded_image(dispatch_settings, storage, bob)
    [own_job] = submit(dispatch_engine, alice, source=own_url)
    [stolen_job] = submit(dispatch_engine, alice, source=bobs_url)
    assert reserved(db, alice.id) == 2

    response = httpx.post(f"{dispatch_api.url}/functions/v1/claim-jobs", headers=KEY, timeout=60,
                          json={"max": 10, "worker_id": "gpu", "lease_seconds": 60})
    assert response.status_code == 200, response.text
    [leased] = response.json()["jobs"]
    assert leased["job_id"] == own_job
    # The owner's image: a signed download URL (not the stored authenticated one) that serves the bytes.
    assert "/storage/v1/object/sign/images/" in leased["source_image_url"] and "token=" in leased["source_image_url"]
    assert httpx.get(leased["source_image_url"], timeout=30).content == own_bytes
    # Bob's image: no URL for it ever left segbase; Alice's job ended error, her reservation released.
    assert bobs_url.rsplit("/", 1)[1] not in response.text
    assert (job(db, stolen_job).state, job(db, stolen_job).outcome) == ("finished", "source_image_not_readable")
    assert result(db, stolen_job)["status"] == "error"
    assert result(db, stolen_job)["metadata"]["error"] == "source_image_not_readable"
    assert reserved(db, alice.id) == 1


def test_push_never_delivers_a_url_to_another_users_image(dispatch_settings, dispatch_engine, storage, db):
    receiver = Receiver().start()
    settings = push_settings(dispatch_settings, receiver, "s")
    try:
        with processes() as running:
            running.worker(settings, "storage-push-worker", concurrency=2)
            running.relay(settings, "relay-s")
            alice, bob = create_user(dispatch_settings, credits=5), create_user(dispatch_settings, credits=5)
            own_url, own_bytes = uploaded_image(dispatch_settings, storage, alice)
            bobs_url, _ = uploaded_image(dispatch_settings, storage, bob)
            [stolen_job] = submit(dispatch_engine, alice, source=bobs_url)
            [own_job] = submit(dispatch_engine, alice, source=own_url)
            [delivery] = receiver.wait_for_requests(1, own_job)
            data = receiver.verify(SECRET, delivery)["data"]
            assert httpx.get(data["source_image_url"], timeout=30).content == own_bytes
            assert job(db, stolen_job).outcome == "source_image_not_readable"
            assert receiver.requests(stolen_job) == []
            assert all(bobs_url.rsplit("/", 1)[1] not in r.body.decode() for r in receiver.requests())
    finally:
        receiver.stop()


def test_the_mask_upload_url_writes_the_jobs_mask_until_the_job_is_finished(dispatch_settings, dispatch_engine,
                                                                             dispatch_api, storage, db):
    alice = create_user(dispatch_settings, credits=5)
    [job_id] = submit(dispatch_engine, alice)
    [leased] = httpx.post(f"{dispatch_api.url}/functions/v1/claim-jobs", headers=KEY, timeout=60,
                          json={"max": 1, "worker_id": "gpu"}).json()["jobs"]
    assert leased["mask_path"] == f"masks/{alice.id}/{job_id}.png"
    mask = png_bytes(8, 8, (255, 255, 255))
    put = httpx.put(leased["mask_upload_url"], content=mask, headers={"content-type": "image/png"}, timeout=30)
    assert put.status_code == 200, put.text
    # The owner reads the mask like any of their objects.
    assert storage.download("masks", f"{alice.id}/{job_id}.png", alice.access_token).content == mask

    db.execute("select internal.cancel_dispatch_job(%s)", (job_id,))
    again = httpx.put(leased["mask_upload_url"], content=mask, headers={"content-type": "image/png"}, timeout=30)
    assert again.status_code == 403, again.text
