"""The file backend's writer on its own (no stack): what it commits is exactly what it was given, and it asks the
kernel to start writeback of every WRITEBACK_BYTES as they are written (each byte once, in order), leaving only
the tail to the fsync at commit."""
from __future__ import annotations

import os
import uuid

import pytest

from db.storage import backends
from db.storage.backends import WRITEBACK_BYTES, FileBackend


@pytest.mark.skipif(backends._sync_file_range is None, reason="sync_file_range(2) is Linux only")
def test_an_upload_starts_its_writeback_while_streaming_and_commits_intact_bytes(tmp_path, monkeypatch) -> None:
    requested: list[tuple[int, int]] = []
    real = backends._sync_file_range

    def recording(fd: int, offset: int, length: int, flags: int) -> int:
        requested.append((offset, length))
        return real(fd, offset, length, flags)

    monkeypatch.setattr(backends, "_sync_file_range", recording)
    body = os.urandom(2 * WRITEBACK_BYTES + 12345)
    sizes = [1, 65536, WRITEBACK_BYTES - 7, 3 * 65536 + 5, WRITEBACK_BYTES, len(body)]  # uneven, as multipart is
    backend = FileBackend(tmp_path)
    version = str(uuid.uuid4())
    writer = backend.writer(version)
    offset = 0
    for size in sizes:
        writer.write(body[offset:offset + size])
        offset += size
        if offset >= len(body):
            break
    writer.commit()

    assert backend.path_of(version).read_bytes() == body
    assert requested, "no writeback was started while the body streamed"
    assert requested[0][0] == 0 and all(length >= WRITEBACK_BYTES for _, length in requested)
    assert all(a + n == b for (a, n), (b, _) in zip(requested, requested[1:]))  # contiguous, nothing twice
    assert len(body) - (requested[-1][0] + requested[-1][1]) < WRITEBACK_BYTES  # only the tail is left to fsync
