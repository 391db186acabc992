"""A 200 MB upload and download stream through the API: the serving process's peak RSS grows by far less than the
object (it holds one chunk at a time), on the file backend (tests/storage/test_s3.py runs the same round trip on
S3)."""
from __future__ import annotations

import pytest

from tests.support.auth import start_api
from tests.support.factories import create_user
from tests.support.storage import rss_growth_of_a_round_trip

pytestmark = [pytest.mark.slow]

SIZE = 200 * 1024 * 1024
BOUND = 64 * 1024 * 1024  # a generous ceiling for growth; holding the object would add 200 MB


def test_200_mb_upload_and_download_keep_the_api_rss_bounded(settings, tmp_path) -> None:
    server = start_api(settings, storage_max_file_size=SIZE + 1024, storage_dir=settings.storage_dir)
    try:
        growth = rss_growth_of_a_round_trip(server, settings, create_user(settings, credits=10), tmp_path, SIZE)
        print("peak RSS growth per process (bytes):", growth)
        assert max(growth.values()) < BOUND, growth
    finally:
        server.stop()
