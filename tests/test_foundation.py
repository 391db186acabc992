"""The foundation: settings, the migration runner's refusals and concurrency, the CLI, health, CORS, errors."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest

from db.migrate import (
    MIGRATIONS_DIR,
    MigrationError,
    migrate,
    migration_status,
    new_migration,
)
from schemas.settings import DEV_JWT_SECRET, Settings, documented_setting_names
from tests.support.database import create_database, drop_database, make_test_settings
from tests.support.processes import ApiProcess

ROOT = Path(__file__).resolve().parent.parent


# --- settings ------------------------------------------------------------------------------------------------

def test_settings_refuse_placeholder_secrets_in_prod():
    with pytest.raises(ValueError, match="JWT_SECRET is the public development placeholder"):
        Settings(_env_file=None, env="prod", db_authenticator_password="x" * 20, webhook_api_keys="k1")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(_env_file=None, jwt_secret="short")
    with pytest.raises(ValueError, match="AUTH_SITE_URL must be set"):
        Settings(_env_file=None, env="prod", jwt_secret="s" * 40, db_authenticator_password="p" * 20,
                 webhook_api_keys="k1", metrics_token="m" * 20)
    ok = Settings(_env_file=None, env="prod", jwt_secret="s" * 40, db_authenticator_password="p" * 20,
                  webhook_api_keys="k1, k2", metrics_token="m" * 20,
                  auth_site_url="https://app.example")
    assert ok.webhook_api_keys == ["k1", "k2"]


def test_settings_round_trip_through_environment():
    settings = Settings(_env_file=None, cors_allowed_origins="https://a.example,https://b.example", api_port=1234)
    rebuilt = Settings(_env_file=None, **{k.lower(): v for k, v in settings.to_env().items()})
    assert rebuilt == settings
    assert settings.redis_key("celery", "default") == "segbase:celery:default"


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in documented_setting_names() if f"`{name}`" not in readme]
    assert not missing, f"settings missing from the README table: {missing}"


# --- migration runner ----------------------------------------------------------------------------------------

@pytest.fixture
def scratch(tmp_path, run_id):
    """An empty database and a copy of the migrations directory to tamper with."""
    name = f"segbase_scratch_{run_id}_{tmp_path.name[-6:].lower()}"
    url = create_database(name)
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    yield make_test_settings(url, f"s{run_id}"), migrations
    drop_database(name)


def test_migrate_applies_everything_once_and_is_idempotent(scratch):
    settings, migrations = scratch
    first = migrate(settings, directory=migrations, log=lambda *_: None)
    assert first == sorted(p.name[:14] for p in migrations.glob("*.sql"))
    assert migrate(settings, directory=migrations, log=lambda *_: None) == []
    status = migration_status(settings, directory=migrations)
    assert status.current and status.applied == first


def test_migrate_refuses_an_edited_applied_file(scratch):
    settings, migrations = scratch
    migrate(settings, directory=migrations, log=lambda *_: None)
    victim = sorted(migrations.glob("*.sql"))[0]
    victim.write_text(victim.read_text() + "\n-- edited\n")
    later = migrations / "29990101000000_later.sql"
    later.write_text("-- Why: test\ncreate table public.should_not_exist (id int);\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrate(settings, directory=migrations, log=lambda *_: None)
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("select to_regclass('public.should_not_exist')").fetchone()[0] is None


def test_migrate_refuses_a_file_sorting_before_the_last_applied(scratch):
    settings, migrations = scratch
    migrate(settings, directory=migrations, log=lambda *_: None)
    (migrations / "20000101000000_too_early.sql").write_text("-- Why: test\ncreate table public.early (id int);\n")
    with pytest.raises(MigrationError, match="sorts before the last applied"):
        migrate(settings, directory=migrations, log=lambda *_: None)
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("select to_regclass('public.early')").fetchone()[0] is None


def test_migrate_refuses_a_misnamed_file(scratch):
    settings, migrations = scratch
    (migrations / "add_stuff.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match="YYYYMMDDHHmmss_description.sql"):
        migrate(settings, directory=migrations, log=lambda *_: None)


def test_a_failing_migration_applies_nothing_of_itself(scratch):
    settings, migrations = scratch
    (migrations / "29990101000000_broken.sql").write_text(
        "-- Why: test\ncreate table public.half_done (id int);\nselect no_such_function();\n")
    with pytest.raises(psycopg.Error):
        migrate(settings, directory=migrations, log=lambda *_: None)
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("select to_regclass('public.half_done')").fetchone()[0] is None
        applied = {r[0] for r in conn.execute("select version from segbase_migrations.applied")}
    assert "29990101000000" not in applied and len(applied) == len(list(migrations.glob("*.sql"))) - 1


def test_concurrent_migrate_runs_apply_each_file_once(scratch):
    settings, migrations = scratch
    results, errors = [], []

    def run():
        try:
            results.append(migrate(settings, directory=migrations, log=lambda *_: None))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    applied = sorted(v for r in results for v in r)
    assert applied == sorted(p.name[:14] for p in migrations.glob("*.sql"))


def test_new_migration_names_the_file(tmp_path):
    path = new_migration("Add result index!", directory=tmp_path)
    assert len(path.name.split("_")[0]) == 14 and path.name.endswith("_add_result_index.sql")
    assert path.read_text().startswith("-- Why:")


# --- CLI -----------------------------------------------------------------------------------------------------

def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", **settings.to_env()}
    return subprocess.run([sys.executable, "-m", "segbase", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_status_json_has_supabase_shape_and_hides_secrets_outside_dev(settings):
    out = run_cli(settings, "status", "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    for key in ("api_url", "anon_key", "service_role_key", "webhook_api_key", "db_url", "redis_url"):
        assert key in status
    secret = settings.jwt_secret.get_secret_value()
    assert jwt.decode(status["service_role_key"], secret, algorithms=["HS256"])["role"] == "service_role"
    assert jwt.decode(status["anon_key"], secret, algorithms=["HS256"])["role"] == "anon"
    prod = make_test_settings(settings.database_url, settings.instance_id, env="prod", jwt_secret="p" * 40,
                              db_authenticator_password="q" * 20, webhook_api_keys=["prod-key"],
                              metrics_token="m" * 20, auth_site_url="https://app.example")
    hidden = json.loads(run_cli(prod, "status", "--json").stdout)
    assert "prod-key" not in json.dumps(hidden) and hidden["service_role_key"].startswith("<hidden")
    assert "postgres@" not in hidden["db_url"]


def test_migrate_status_cli(settings):
    out = run_cli(settings, "migrate", "--status")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["current"] is True


def test_invalid_settings_fail_with_a_clear_message(settings):
    env = {"PATH": "/usr/bin:/bin", **settings.to_env(), "ENV": "prod", "JWT_SECRET": DEV_JWT_SECRET}
    out = subprocess.run([sys.executable, "-m", "segbase", "status"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "JWT_SECRET" in out.stderr


# --- HTTP basics ---------------------------------------------------------------------------------------------

def test_healthz_and_readyz(api_server):
    assert httpx.get(f"{api_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{api_server.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "migrations": "ok", "redis": "ok"}


@pytest.mark.parametrize("prefix", ["/auth/v1/signup", "/rest/v1/projects", "/functions/v1/process-webhook"])
def test_cors_preflight_like_supabase(api_server, prefix):
    response = httpx.options(f"{api_server.url}{prefix}", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, apikey, content-type, x-client-info"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    for header in ("authorization", "apikey", "content-type", "x-client-info", "prefer", "range"):
        assert header in response.headers["access-control-allow-headers"]
    assert "Content-Range" in response.headers["access-control-expose-headers"]


def test_unknown_route_uses_the_error_envelope(api_server):
    response = httpx.get(f"{api_server.url}/no/such/route")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_oversized_body_is_413(api_server):
    response = httpx.post(f"{api_server.url}/functions/v1/process-webhook", content=b"x" * (2 * 1024 * 1024),
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_access_log_never_contains_query_secrets(api_server):
    httpx.get(f"{api_server.url}/healthz?apikey=super-secret-value&token=tok-123")
    log = api_server.log_text()
    assert "super-secret-value" not in log and "tok-123" not in log


def test_metrics_count_requests_by_route(api_server):
    httpx.get(f"{api_server.url}/healthz")
    text = httpx.get(f"{api_server.url}/metrics").text
    assert 'segbase_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "segbase_http_request_duration_seconds_bucket" in text


def test_metrics_can_be_protected_and_disabled(settings):
    protected = make_test_settings(settings.database_url, settings.instance_id, metrics_token="m" * 20)
    server = ApiProcess(protected).start()
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        ok = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer " + "m" * 20})
        assert ok.status_code == 200 and "segbase_http_requests_total" in ok.text
    finally:
        server.stop()
    disabled = make_test_settings(settings.database_url, settings.instance_id, metrics_enabled=False)
    server = ApiProcess(disabled).start()
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 404
    finally:
        server.stop()
