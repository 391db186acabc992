"""Test databases and settings: each pytest-xdist worker (and each benchmark) gets its own database and INSTANCE_ID."""
from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
from dotenv import dotenv_values
from psycopg import sql

from db.migrate import migrate
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


TEST_STORAGE_ROOT = Path(tempfile.gettempdir()) / "segbase-test-storage"
TEST_REDIS_DB = 1  # the development stack uses 0; fault tests pick their own (tests/redis_dbs.py)


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
        redis_url=f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
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
