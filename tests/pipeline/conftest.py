"""Fixtures for the pipeline tests: real worker processes, users with pending results submitted as themselves,
HTTP helpers for process-webhook, the inbox/charge figures every exactly-once test checks, and a Redis database
of its own for each fault test (DB 8–15, claimed with SETNX on DB 0 so concurrent runs never share one)."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from db.urls import libpq_url
from schemas.settings import Settings
from tests.support.pipeline import (
    start_worker,
)
from tests.support.processes import SegbaseProcess


@pytest.fixture(scope="session")
def pipeline_worker(settings: Settings) -> Iterator[SegbaseProcess]:
    """One worker process serving the session's queue (the `api_server` fixture enqueues into it)."""
    worker = start_worker(settings, "pipeline-worker")
    yield worker
    worker.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection]:
    """An owner connection for inspecting figures (set-up and checks only)."""
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        yield conn
