"""Fixtures for /storage/v1: the session's live API (file backend), users with real tokens, a raw HTTP client
speaking as the clients do, and small real images."""
from __future__ import annotations

import httpx
import pytest

from tests.support.factories import create_user
from tests.support.storage import StorageHttp, png_bytes


@pytest.fixture(scope="session")
def storage_url(api_server) -> str:
    return f"{api_server.url}/storage/v1"


@pytest.fixture(scope="session")
def http() -> httpx.Client:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def alice(settings):
    return create_user(settings, credits=100)


@pytest.fixture
def bob(settings):
    return create_user(settings, credits=100)


@pytest.fixture
def raw(storage_url, anon_key, service_key, http) -> StorageHttp:
    return StorageHttp(storage_url, anon_key, service_key, http)


@pytest.fixture(scope="session")
def png() -> bytes:
    return png_bytes(64, 48)
