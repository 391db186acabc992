"""Fixtures mirror the seams: settings → database → engine → live processes → clients.

Each pytest(-xdist) worker process gets its own database (created and migrated here, dropped at the end) and its
own INSTANCE_ID, so tests never touch the development database or its Redis namespace, and two test runs on one
machine do not collide. Cluster-wide roles are created by the bootstrap under a lock held in the `postgres`
database (`migrate_serialised`).
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from api.tokens import api_key
from db.engine import create_app_engine
from db.urls import libpq_url
from schemas.settings import Settings
from tests.support.database import (
    create_database,
    drop_database,
    make_test_settings,
    migrate_serialised,
)
from tests.support.processes import ApiProcess


@pytest.fixture(scope="session")
def run_id(worker_id: str) -> str:
    return f"{uuid.uuid4().hex[:8]}{worker_id.replace('gw', 'w')}"


@pytest.fixture(scope="session")
def settings(run_id: str) -> Iterator[Settings]:
    """The session's Settings, pointing at a freshly created and migrated database."""
    name = f"segbase_t_{run_id}"
    url = create_database(name)
    test_settings = make_test_settings(url, f"t{run_id}")
    migrate_serialised(test_settings)
    yield test_settings
    drop_database(name)


@pytest.fixture(scope="session")
def engine(settings: Settings):
    """An `authenticator` engine, as the API and workers use."""
    app_engine = create_app_engine(settings, pool_size=3, application_name="segbase-tests")
    yield app_engine
    app_engine.dispose()


@pytest.fixture
def owner_conn(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection as the database owner, for set-up and inspection only (owners bypass RLS)."""
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def anon_key(settings: Settings) -> str:
    return api_key(settings, "anon")


@pytest.fixture(scope="session")
def service_key(settings: Settings) -> str:
    return api_key(settings, "service_role")


@pytest.fixture(scope="session")
def api_server(settings: Settings) -> Iterator[ApiProcess]:
    """A live `segbase api` (gunicorn + gevent, the production server) on a free port."""
    server = ApiProcess(settings).start()
    yield server
    server.stop()
