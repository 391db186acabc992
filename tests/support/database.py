"""Test databases and settings: each pytest-xdist worker (and each benchmark) gets its own database and INSTANCE_ID.

The servers are the ones `DATABASE_URL` and `REDIS_URL` name in the environment (as for `segbase` itself; the
defaults are Settings' own): tests create their databases on that PostgreSQL server, next to the database the URL
names, and use numbered databases of that Redis server. A developer's `.env` is not read.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
from dotenv import dotenv_values
from psycopg import sql
from sqlalchemy.engine import make_url

from db.migrate import migrate
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TEST_STORAGE_ROOT = Path(tempfile.gettempdir()) / "segbase-test-storage"
TEST_REDIS_DB = 1  # the development stack uses 0; fault tests pick their own (tests/support/pipeline.py)


def server_url(database: str) -> str:
    """A database on the PostgreSQL server of `DATABASE_URL` (user, password, host, port and options kept)."""
    base = os.environ.get("DATABASE_URL") or Settings.model_fields["database_url"].default
    url = make_url(base.replace("postgres://", "postgresql://", 1)).set(database=database)
    return url.render_as_string(hide_password=False)


def redis_url(db: int) -> str:
    """Database number `db` of the Redis server of `REDIS_URL`."""
    base = os.environ.get("REDIS_URL") or Settings.model_fields["redis_url"].default
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    query = rest.split("?", 1)[1] if "?" in rest else ""
    return f"{scheme}://{authority}/{db}" + (f"?{query}" if query else "")


PG_ADMIN_URL = server_url("postgres")


def shared_authenticator_password() -> str | None:
    """The `.env`'s DB_AUTHENTICATOR_PASSWORD, when there is one: the `authenticator` role is cluster-wide and keeps
    the password it was created with, so tests on the server a `make run` stack uses must log in with that one."""
    path = ROOT / ".env"
    return dotenv_values(path).get("DB_AUTHENTICATOR_PASSWORD") if path.is_file() else None


def make_test_settings(database_url: str, instance_id: str, **overrides) -> Settings:
    """Settings for tests: their own database and namespace, generous auth limits, small pools."""
    values = dict(
        env="dev",
        database_url=database_url,
        instance_id=instance_id,
        redis_url=redis_url(TEST_REDIS_DB),
        db_pool_size=3,
        auth_rate_limit_sign_in=10_000,
        auth_rate_limit_refresh=10_000,
        webhook_api_keys=["test-webhook-key", "test-webhook-key-rotated"],
        api_workers=1,
        log_level="INFO",
        storage_dir=str(TEST_STORAGE_ROOT / instance_id),  # each test namespace's blobs apart, outside the repo
    )
    password = shared_authenticator_password()
    if password:
        values["db_authenticator_password"] = password
    values.update(overrides)
    return Settings(_env_file=None, **values)


def create_database(name: str) -> str:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server_url(name)


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
