"""The cluster-wide `authenticator` role keeps the password it was created with: another stack (or a test run)
migrating its own database on the same server never changes it; `segbase migrate --rotate-authenticator-password`
changes it on purpose; a process whose DB_AUTHENTICATOR_PASSWORD no longer logs in stops at start naming the
setting. Against a scram-sha-256 cluster of the test's own (the shared test server trusts every login)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from db.migrate import MigrationError, migrate, rotate_authenticator_password
from schemas.settings import Settings
from segbase.preflight import check_authenticator_login
from tests.support.pgcluster import OwnCluster
from tests.support.processes import ROOT, free_port


@pytest.fixture(scope="module")
def cluster() -> Iterator[OwnCluster]:
    own = OwnCluster().start()
    yield own
    own.stop()


def stack(cluster: OwnCluster, database: str, password: str) -> Settings:
    return Settings(_env_file=None, database_url=cluster.url(database), db_authenticator_password=password,
                    instance_id=database.replace("_", "-"), redis_url="redis://127.0.0.1:6379/1")


def logs_in(cluster: OwnCluster, password: str, database: str = "postgres") -> bool:
    try:
        psycopg.connect(f"postgresql://authenticator:{password}@127.0.0.1:{cluster.port}/{database}",
                        connect_timeout=10).close()
        return True
    except psycopg.OperationalError:
        return False


def segbase(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGBASE_", "PYTEST_"))}
    env.update(settings.to_env())
    env["SEGBASE_ENV_FILE"] = ""
    return subprocess.run([sys.executable, "-m", "segbase", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_password_is_set_at_creation_kept_by_other_stacks_and_rotated_on_purpose(cluster) -> None:
    first = stack(cluster, "stack_a", "first-password-123")
    migrate(first, log=lambda *_: None)
    assert logs_in(cluster, "first-password-123")
    with psycopg.connect(cluster.url()) as conn:
        stored = conn.execute("select rolpassword from pg_authid where rolname = 'authenticator'").fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$")  # hashed by the client: the password never reached the server

    second = stack(cluster, "stack_b", "second-password-456")
    migrate(second, log=lambda *_: None)
    assert logs_in(cluster, "first-password-123"), "a second stack's migrate changed the shared password"
    assert not logs_in(cluster, "second-password-456")

    assert check_authenticator_login(first) is None
    problem = check_authenticator_login(second)
    assert problem is not None and "DB_AUTHENTICATOR_PASSWORD" in problem
    for command in ("worker", "relay", "beat", "api"):
        started = segbase(second, command, *(("--port", str(free_port())) if command == "api" else ()))
        assert started.returncode == 1, (command, started.stdout, started.stderr)
        assert "DB_AUTHENTICATOR_PASSWORD" in started.stderr, (command, started.stderr)
        assert "Traceback" not in started.stderr

    rotated = segbase(second, "migrate", "--rotate-authenticator-password")
    assert rotated.returncode == 0, rotated.stderr
    assert logs_in(cluster, "second-password-456") and not logs_in(cluster, "first-password-123")
    assert check_authenticator_login(second) is None


def test_rotation_refuses_a_role_segbase_did_not_create(cluster) -> None:
    settings = stack(cluster, "stack_c", "third-password-789")
    migrate(settings, log=lambda *_: None)
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("comment on role authenticator is null")
        try:
            with pytest.raises(MigrationError, match="not created by segbase"):
                rotate_authenticator_password(settings)
        finally:
            conn.execute("comment on role authenticator is 'segbase: API login role'")
