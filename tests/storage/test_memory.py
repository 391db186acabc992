"""A 200 MB upload and download stream through the API: the serving process's peak RSS grows by far less than the
object (it holds one chunk at a time), on the file backend."""
from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from api.tokens import api_key
from tests.support.auth import start_api
from tests.support.factories import create_user
from tests.support.storage import child_pids, peak_rss_bytes

pytestmark = [pytest.mark.slow]

SIZE = 200 * 1024 * 1024
BOUND = 64 * 1024 * 1024  # a generous ceiling for growth; holding the object would add 200 MB


def test_200_mb_upload_and_download_keep_the_api_rss_bounded(settings, tmp_path) -> None:
    server = start_api(settings, storage_max_file_size=SIZE + 1024, storage_dir=settings.storage_dir)
    try:
        user = create_user(settings, credits=10)
        headers = {"apikey": api_key(settings, "anon"), "Authorization": f"Bearer {user.access_token}"}
        source = tmp_path / "big.png"
        digest = hashlib.sha256()
        with open(source, "wb") as out:
            block = os.urandom(1024 * 1024)
            for index in range(SIZE // len(block)):
                chunk = block[:-4] + index.to_bytes(4, "big")
                digest.update(chunk)
                out.write(chunk)
        url = f"{server.url}/storage/v1/object/images/{user.id}/big.png"
        workers = child_pids(server.pid)
        # warm up every path once (imports, pools), then measure growth of the peak
        with httpx.Client(timeout=300) as http:
            http.post(f"{server.url}/storage/v1/object/images/{user.id}/warm.png", content=b"\x89PNG" * 1000,
                      headers={**headers, "Content-Type": "image/png"}).raise_for_status()
            http.get(f"{server.url}/storage/v1/object/images/{user.id}/warm.png", headers=headers).raise_for_status()
            before = {pid: peak_rss_bytes(pid) for pid in workers}
            with open(source, "rb") as body:
                up = http.post(url, content=body, headers={**headers, "Content-Type": "image/png"})
            assert up.status_code == 200, up.text
            received = hashlib.sha256()
            with http.stream("GET", url, headers=headers) as down:
                assert down.status_code == 200
                for chunk in down.iter_bytes():
                    received.update(chunk)
        assert received.hexdigest() == digest.hexdigest()
        growth = {pid: peak_rss_bytes(pid) - before[pid] for pid in workers}
        print("peak RSS growth per process (bytes):", growth)
        assert max(growth.values()) < BOUND, growth
    finally:
        server.stop()
