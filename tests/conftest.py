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
from psycopg import sql

from api.tokens import api_key
from db.engine import create_app_engine
from db.migrate import libpq_url, migrate
from schemas.settings import Settings
from tests.processes import ApiProcess

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEST_REDIS_DB = 1  # the development stack uses 0; fault tests pick their own (tests/redis_dbs.py)


def make_test_settings(database_url: str, instance_id: str, **overrides) -> Settings:
    """Settings for tests: their own database and namespace, generous auth limits, small pools."""
    values = dict(
        env="dev",
        database_url=database_url,
        instance_id=instance_id,
        redis_url=f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
        db_pool_size=3,
        auth_rate_limit_sign_in=10_000,
        auth_rate_limit_refresh=10_000,
        webhook_api_keys=["test-webhook-key", "test-webhook-key-rotated"],
        api_workers=1,
        log_level="INFO",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


def create_database(name: str) -> str:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


CLUSTER_BOOTSTRAP_LOCK = 0x5E6B0075  # held in the `postgres` database: advisory locks are per database


def migrate_serialised(test_settings: Settings, **kwargs):
    """Migrate a test database while holding a cluster-wide lock, so the bootstrap's role DDL (roles are
    cluster-wide) runs once at a time across pytest workers and concurrent test runs."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as lock_conn:
        lock_conn.execute("select pg_advisory_lock(%s)", (CLUSTER_BOOTSTRAP_LOCK,))
        return migrate(test_settings, log=lambda *_: None, **kwargs)


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
