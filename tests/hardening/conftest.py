"""Fixtures for the hardening tests: a live API with a worker (the attacker's view), HTTP, an owner connection."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from db.urls import libpq_url
from schemas.settings import Settings
from tests.support.pipeline import start_worker
from tests.support.processes import SegbaseProcess


@pytest.fixture(scope="session")
def pipeline_worker(settings: Settings) -> Iterator[SegbaseProcess]:
    """One worker process serving the session's queue (the `api_server` fixture enqueues into it)."""
    worker = start_worker(settings, "hardening-worker")
    yield worker
    worker.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection]:
    """An owner connection for set-up and checks (owners bypass RLS)."""
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        yield conn
