"""The same client, lifecycle and limit tests against the S3 backend: an API with STORAGE_BACKEND=s3 talking to
moto's S3 in server mode (a real S3-protocol server on loopback, started here), plus what only S3 has: multipart
uploads of several parts and aborting a dead process's multipart uploads."""
from __future__ import annotations

import hashlib
import uuid

import pytest

from db.storage.backends import S3_PART_BYTES, S3Backend
from tests.storage.test_clients_py import *  # noqa: F403 — the client tests, run here against S3
from tests.storage.test_lifecycle import *  # noqa: F403 — the lifecycle tests, run here against S3
from tests.storage.test_clients_js import check_supabase_js_storage
from tests.storage.test_memory import BOUND, SIZE
from tests.support.auth import start_api
from tests.support.database import make_test_settings
from tests.support.factories import create_user
from tests.support.storage import MotoServer, png_bytes, rss_growth_of_a_round_trip, unique


@pytest.fixture(scope="module")
def moto():
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_overrides(moto) -> dict:
    return {"storage_backend": "s3", "storage_s3_endpoint": moto.url, "storage_s3_bucket": f"segbase-{uuid.uuid4().hex[:12]}",
            "storage_s3_region": "us-east-1", "storage_s3_access_key_id": "testing",
            "storage_s3_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def s3_api(settings, s3_overrides):
    server = start_api(settings, **s3_overrides)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def storage_url(s3_api) -> str:
    return f"{s3_api.url}/storage/v1"


@pytest.fixture
def backend(settings, s3_overrides) -> S3Backend:
    s3_settings = make_test_settings(settings.database_url, settings.instance_id, **s3_overrides)
    backend = S3Backend.from_settings(s3_settings)
    backend.ensure_bucket()
    return backend


def test_blobs_live_in_s3_and_large_uploads_use_several_parts(raw, alice, backend, owner_conn) -> None:
    name = f"{alice.id}/{unique('big')}.png"
    body = png_bytes(4, 4) + bytes(range(256)) * ((2 * S3_PART_BYTES + 12345) // 256)
    assert raw.upload("images", name, body, alice.access_token).status_code == 200
    version = owner_conn.execute("select version from storage.objects where bucket_id = 'images' and name = %s",
                                 (name,)).fetchone()[0]
    assert backend.exists(version)
    assert hashlib.sha256(b"".join(backend.read(version))).hexdigest() == hashlib.sha256(body).hexdigest()
    part = raw.download("images", name, alice.access_token, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == body[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(body)}"


def test_the_janitor_aborts_a_dead_processes_multipart_uploads(backend) -> None:
    writer = backend.writer(str(uuid.uuid4()))
    writer.write(b"\0" * (S3_PART_BYTES + 1))  # one part sent, then the process "dies"
    assert backend.writes_in_progress() >= 1
    assert backend.abandon_stale_writes(0) >= 1
    assert backend.writes_in_progress() == 0


@pytest.mark.slow
def test_200_mb_upload_and_download_keep_the_api_rss_bounded_on_s3(settings, s3_overrides, tmp_path) -> None:
    """The S3 writer holds one 8 MiB part, the reader one chunk: the round trip never holds the object."""
    server = start_api(settings, storage_max_file_size=SIZE + 1024, **s3_overrides)
    try:
        growth = rss_growth_of_a_round_trip(server, settings, create_user(settings, credits=10), tmp_path, SIZE)
        print("peak RSS growth per process (bytes):", growth)
        assert max(growth.values()) < BOUND, growth
    finally:
        server.stop()


@pytest.mark.node
def test_supabase_js_storage_on_s3(s3_api, alice, bob, anon_key, service_key, png) -> None:
    check_supabase_js_storage(s3_api, alice, bob, anon_key, service_key, png)
