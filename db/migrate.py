"""The migration runner: bootstrap (idempotent, every run), then pending migrations in order, each in its own
transaction, recorded with a checksum; config written from Settings. Safe when several processes start at once.

It connects as the database owner (`DATABASE_URL`) with plain psycopg: migration files hold many statements,
which psycopg runs in one simple-query round trip when given no parameters.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from db.urls import libpq_url
from schemas.settings import Settings

DB_DIR = Path(__file__).resolve().parent
BOOTSTRAP_DIR = DB_DIR / "bootstrap"
MIGRATIONS_DIR = DB_DIR / "migrations"
MIGRATION_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")
# Serialises runners of one database (advisory locks are per database; see _run_cluster_wide for roles).
MIGRATION_LOCK_KEY = 0x5E6BA5E


class MigrationError(RuntimeError):
    """The migrations on disk and the ones applied disagree; nothing was applied."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql_text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[str]
    pending: list[str]

    @property
    def current(self) -> bool:
        return not self.pending


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a misnamed .sql file is an error, not silently skipped."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named YYYYMMDDHHmmss_description.sql")
        migrations.append(Migration(match["version"], match["name"], path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version")
    return migrations


def new_migration(description: str, directory: Path = MIGRATIONS_DIR, now: datetime | None = None) -> Path:
    """Create an empty `YYYYMMDDHHmmss_description.sql` with the first comment line to fill in."""
    slug = re.sub(r"[^a-z0-9]+", "_", description.lower()).strip("_")
    if not slug:
        raise MigrationError("describe the migration, e.g. `segbase migrate new add_result_index`")
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M%S")
    path = directory / f"{stamp}_{slug}.sql"
    path.write_text(f"-- Why: {description}\n")
    return path


TRACKING_DDL = """
create schema if not exists segbase_migrations;
create table if not exists segbase_migrations.applied (
  version text primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now()
);
revoke all on schema segbase_migrations from public;
"""


def _applied(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute("select version, checksum from segbase_migrations.applied order by version").fetchall()
    return {version: checksum for version, checksum in rows}


def check_migrations(applied: dict[str, str], on_disk: list[Migration]) -> list[Migration]:
    """Return the pending migrations, or refuse if an applied file changed or a new one sorts before the last."""
    by_version = {m.version: m for m in on_disk}
    for version, checksum in applied.items():
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(f"migration {version} was applied but its file is gone")
        if migration.checksum != checksum:
            raise MigrationError(f"{migration.path.name} was edited after it was applied; "
                                 "write a new migration instead")
    pending = [m for m in on_disk if m.version not in applied]
    last_applied = max(applied, default="")
    early = [m.path.name for m in pending if m.version < last_applied]
    if early:
        raise MigrationError(f"{', '.join(early)} sorts before the last applied migration {last_applied}; "
                             "rename it with a later timestamp")
    return pending


# Advisory locks are per database, but roles are per cluster: two runners migrating different databases of one
# cluster (test workers, several deployments) can race on role DDL, which PostgreSQL reports as these errors.
# The bootstrap is idempotent, so the loser simply runs it again.
_CLUSTER_RACE_SQLSTATES = {"XX000", "42710", "23505", "40001", "40P01"}


def _run_cluster_wide(conn: psycopg.Connection, statements: str, attempts: int = 8) -> None:
    for attempt in range(attempts):
        try:
            with conn.transaction():
                conn.execute(statements)
            return
        except psycopg.Error as exc:
            if exc.sqlstate not in _CLUSTER_RACE_SQLSTATES or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


AUTHENTICATOR_COMMENT = "segbase: API login role"


def authenticator_verifier(conn: psycopg.Connection, settings: Settings) -> str:
    """DB_AUTHENTICATOR_PASSWORD hashed by libpq the way the server stores it (SCRAM-SHA-256 unless the server's
    password_encryption says md5), so the password itself never reaches the server or its statement log."""
    password = settings.db_authenticator_password.get_secret_value().encode()
    return conn.pgconn.encrypt_password(password, b"authenticator").decode()


def run_bootstrap(conn: psycopg.Connection, settings: Settings) -> None:
    """Apply db/bootstrap/*.sql (roles, `auth`, `extensions`, publication) — idempotent and guarded. The
    `authenticator` role gets DB_AUTHENTICATOR_PASSWORD only when this creates it."""
    conn.execute("select set_config('segbase.authenticator_password', %s, false)",
                 (authenticator_verifier(conn, settings),))
    for path in sorted(BOOTSTRAP_DIR.glob("*.sql")):
        _run_cluster_wide(conn, path.read_text())
    conn.execute("select set_config('segbase.authenticator_password', '', false)")


def write_config(conn: psycopg.Connection, settings: Settings) -> None:
    """Write the settings SQL reads (prices, starting credits, retention, the result URL rule) into
    `internal.config`, as JSON values."""
    values: dict[str, int | bool | str] = {
        "credits_per_segmentation": settings.credits_per_segmentation,
        "credits_per_upload": settings.credits_per_upload,
        "starting_credits_free": settings.starting_credits_free,
        "starting_credits_pro": settings.starting_credits_pro,
        "starting_credits_enterprise": settings.starting_credits_enterprise,
        "retention_days_free": settings.retention_days_free,
        "retention_days_pro": settings.retention_days_pro,
        "retention_days_enterprise": settings.retention_days_enterprise,
        "result_timeout_seconds": settings.result_timeout_seconds,
        "result_url_allow_http": settings.result_url_allow_http,
        "result_url_max_length": settings.result_url_max_length,
        "storage_object_url_prefix": settings.storage_object_url_prefix,
    }
    with conn.transaction():
        for key, value in values.items():
            conn.execute(
                "insert into internal.config (key, value) values (%s, %s) "
                "on conflict (key) do update set value = excluded.value",
                (key, Jsonb(value)),
            )


def rotate_authenticator_password(settings: Settings) -> None:
    """Set the cluster-wide `authenticator` role's password to DB_AUTHENTICATOR_PASSWORD, on purpose. Refused when
    the role is not segbase's (a Supabase project's own `authenticator` belongs to its PostgREST)."""
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True,
                         application_name="segbase-migrate") as conn:
        comment = conn.execute("select shobj_description(oid, 'pg_authid') from pg_roles "
                               "where rolname = 'authenticator'").fetchone()
        if comment is None:
            raise MigrationError("there is no authenticator role yet: `segbase migrate` creates it")
        if comment[0] != AUTHENTICATOR_COMMENT:
            raise MigrationError("the authenticator role was not created by segbase (a Supabase project's own?); "
                                 "change its password where it is managed")
        conn.execute(sql.SQL("alter role authenticator password {}").format(
            sql.Literal(authenticator_verifier(conn, settings))))


def ensure_database(settings: Settings, log=print) -> None:
    """Create the database named in DATABASE_URL when it does not exist yet (a fresh machine's first run)."""
    url = libpq_url(settings.database_url)
    try:
        psycopg.connect(url, connect_timeout=5).close()
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
            log(f"created database {dbname}")
        except psycopg.errors.DuplicateDatabase:
            pass


def migrate(settings: Settings, *, directory: Path = MIGRATIONS_DIR, log=print) -> list[str]:
    """Bring the database up to date; return the versions applied by this call."""
    on_disk = discover_migrations(directory)
    ensure_database(settings, log=log)
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True,
                         application_name="segbase-migrate") as conn:
        conn.execute("select pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(TRACKING_DDL)
            pending = check_migrations(_applied(conn), on_disk)
            run_bootstrap(conn, settings)
            conn.execute("grant usage on schema segbase_migrations to service_role; "
                         "grant select on segbase_migrations.applied to service_role")
            for migration in pending:
                with conn.transaction():
                    conn.execute(migration.sql_text)
                    conn.execute(
                        "insert into segbase_migrations.applied (version, name, checksum) values (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                log(f"applied {migration.path.name}")
            write_config(conn, settings)
            # PostgREST-style catalog caches listen here (see api/rest) to refresh after schema changes.
            conn.execute(sql.SQL("notify {}, 'reload schema'").format(sql.Identifier("pgrst")))
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return [m.version for m in pending]


def migration_status(settings: Settings, *, directory: Path = MIGRATIONS_DIR) -> MigrationStatus:
    on_disk = discover_migrations(directory)
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        exists = conn.execute("select to_regclass('segbase_migrations.applied') is not null").fetchone()[0]
        applied = _applied(conn) if exists else {}
    return MigrationStatus(applied=sorted(applied),
                           pending=[m.version for m in on_disk if m.version not in applied])
