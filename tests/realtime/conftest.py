"""Realtime fixtures: a live relay beside the session's API, users, and a raw Phoenix socket for wire tests."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas.settings import Settings

# The pipeline's session worker fixture (it consumes what the session's `segbase api` enqueues).
from tests.pipeline.conftest import pipeline_worker  # noqa: F401
from tests.support.factories import TestUser, create_user
from tests.support.processes import SegbaseProcess
from tests.support.realtime import (
    wait_relay_active,
)


@pytest.fixture(scope="session")
def relay(settings: Settings) -> Iterator[SegbaseProcess]:
    """The session's `segbase relay` (fault tests start their own after stopping nothing of this one)."""
    process = SegbaseProcess(settings, "relay").start()
    wait_relay_active(process)
    yield process
    process.stop()


@pytest.fixture
def user(settings: Settings) -> TestUser:
    return create_user(settings, credits=50)


@pytest.fixture
def other_user(settings: Settings) -> TestUser:
    return create_user(settings, credits=50)
