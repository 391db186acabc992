"""Point 6 of the Database issue: the real Supabase CLI (2.117.0, from node_modules) accepts db/migrations as a
Supabase project's migrations. `db push` applies them to a fresh database holding only the bootstrap (what a
hosted project has of its own), and `db advisors --type all --level warn` finds nothing there."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from db.migrate import discover_migrations, run_bootstrap
from db.urls import libpq_url
from tests.support.database import (
    CLUSTER_BOOTSTRAP_LOCK,
    PG_ADMIN_URL,
    create_database,
    drop_database,
    make_test_settings,
)

pytestmark = [pytest.mark.node]

REPO = Path(__file__).resolve().parents[2]
SUPABASE_CLI = REPO / "node_modules" / ".bin" / "supabase"
CLI_VERSION = "2.117.0"


def supabase(*args: str, workdir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1", "HOME": str(workdir)}
    return subprocess.run([str(SUPABASE_CLI), *args], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


@pytest.fixture(scope="module")
def bootstrapped_database(run_id: str) -> Iterator[str]:
    """A fresh database with only db/bootstrap applied, under the suite's cluster-wide lock (roles are
    cluster-wide; advisory locks are per database, so it is held in the `postgres` database)."""
    name = f"segbase_t_{run_id}_cli"
    url = create_database(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as lock_conn:
        lock_conn.execute("select pg_advisory_lock(%s)", (CLUSTER_BOOTSTRAP_LOCK,))
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            run_bootstrap(conn, make_test_settings(url, f"t{run_id}cli"))
    # The CLI speaks TLS by default; the local server has none.
    yield f"{url}?sslmode=disable"
    drop_database(name)


@pytest.fixture(scope="module")
def pushed(bootstrapped_database: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    if not SUPABASE_CLI.exists():
        pytest.fail("the Supabase CLI is missing: run `make node` (npm ci)")
    version = subprocess.run([str(SUPABASE_CLI), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == CLI_VERSION
    workdir = tmp_path_factory.mktemp("supabase_project")
    init = supabase("init", "--yes", workdir=workdir)
    assert init.returncode == 0, init.stderr
    migrations_dir = workdir / "supabase" / "migrations"
    migrations_dir.mkdir(parents=True, exist_ok=True)
    for migration in discover_migrations():
        shutil.copy(migration.path, migrations_dir / migration.path.name)
    push = supabase("db", "push", "--db-url", bootstrapped_database, "--yes", workdir=workdir)
    assert push.returncode == 0, push.stdout + push.stderr
    return bootstrapped_database, workdir, push.stdout + push.stderr


def test_db_push_applies_every_migration(pushed) -> None:
    url, workdir, output = pushed
    assert "Finished supabase db push" in output
    with psycopg.connect(url.replace("?sslmode=disable", "")) as conn:
        applied = [v for (v,) in conn.execute(
            "select version from supabase_migrations.schema_migrations order by version").fetchall()]
        tables = {t for (t,) in conn.execute(
            "select tablename from pg_tables where schemaname = 'public'").fetchall()}
    assert applied == [m.version for m in discover_migrations()]
    assert {"users_profile", "projects", "segmentation_results", "usage_logs"} <= tables
    again = supabase("db", "push", "--db-url", url, "--yes", workdir=workdir)
    assert again.returncode == 0 and "Remote database is up to date" in again.stdout + again.stderr


def test_db_advisors_find_nothing(pushed) -> None:
    url, workdir, _ = pushed
    advisors = supabase("db", "advisors", "--db-url", url, "--type", "all", "--level", "warn", "--fail-on", "warn",
                        "--output-format", "json", workdir=workdir)
    assert advisors.returncode == 0, advisors.stdout + advisors.stderr
    assert json.loads(advisors.stdout)["results"] == []
    assert "No issues found" in advisors.stderr
