"""`segbase status` as a new user runs it: Supabase's names and formats (-o env|json|pretty), the counts an operator
acts on, the older --json keys, and a clear "not running" (exit 1, like `supabase status`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from psycopg.types.json import Jsonb

from api.tokens import api_key
from schemas.settings import Settings
from tests.support.database import make_test_settings
from tests.support.processes import ROOT, free_port

SUPABASE_NAMES = {"API_URL", "REST_URL", "FUNCTIONS_URL", "STUDIO_URL", "DB_URL", "JWT_SECRET", "ANON_KEY",
                  "SERVICE_ROLE_KEY"}


def segbase(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGBASE_", "PYTEST_"))}
    env.update(settings.to_env(), SEGBASE_ENV_FILE="")
    return subprocess.run([sys.executable, "-m", "segbase", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def running(settings: Settings, api_server) -> Settings:
    return settings.model_copy(update={"api_external_url": api_server.url})


def stopped(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_external_url": f"http://127.0.0.1:{free_port()}"})


def test_env_output_has_supabases_names_and_evaluates_in_a_shell(settings, api_server):
    live = running(settings, api_server)
    done = segbase(live, "status", "-o", "env")
    assert done.returncode == 0, done.stderr
    names = {line.split("=", 1)[0] for line in done.stdout.splitlines() if line}
    assert SUPABASE_NAMES | {"WEBHOOK_API_KEY", "REJECTED_WEBHOOKS"} <= names
    assert done.stdout.splitlines() == sorted(done.stdout.splitlines())
    shell = subprocess.run(["bash", "-c", 'eval "$1"; printf "%s\\n%s\\n%s" "$API_URL" "$ANON_KEY" "$STUDIO_URL"',
                            "_", done.stdout], capture_output=True, text=True, timeout=30)
    assert shell.stdout.splitlines() == [api_server.url, api_key(settings, "anon"), f"{api_server.url}/console"]


def test_json_output_and_renamed_variables(settings, api_server):
    done = segbase(running(settings, api_server), "status", "-o", "json",
                   "--override-name", "api.url=NEXT_PUBLIC_SUPABASE_URL")
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    assert values["NEXT_PUBLIC_SUPABASE_URL"] == api_server.url and "API_URL" not in values
    assert values["SERVICE_ROLE_KEY"] == api_key(settings, "service_role")
    bad = segbase(settings, "status", "--override-name", "api.nope=X")
    assert bad.returncode == 2 and "KEY=NAME" in bad.stderr


def test_rejected_webhooks_are_counted(settings, api_server, owner_conn):
    def count() -> int:
        done = segbase(running(settings, api_server), "status", "-o", "json")
        return json.loads(done.stdout)["REJECTED_WEBHOOKS"]

    before = count()
    event_id = owner_conn.execute(
        "insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload, state, reason, "
        "finished_at) values (%s, gen_random_uuid(), 'done', %s, 'rejected', 'unknown result: status test', now()) "
        "returning id", (f"test:{uuid.uuid4()}", Jsonb({}))).fetchone()[0]
    assert count() == before + 1
    pretty = segbase(running(settings, api_server), "status")
    assert f"Rejected webhooks    {before + 1}" in pretty.stdout and "segbase is running" in pretty.stdout
    assert event_id


def test_a_stopped_stack_is_named_and_exits_1(settings):
    down = stopped(settings)
    pretty = segbase(down, "status")
    assert pretty.returncode == 1
    assert pretty.stdout.startswith(f"segbase is not running: nothing answers at {down.public_url}")
    assert "make run" in pretty.stdout
    env = segbase(down, "status", "-o", "env")
    assert env.returncode == 1 and "ANON_KEY=" in env.stdout and "segbase is not running" in env.stderr


def test_the_older_json_keys_stay(settings):
    done = segbase(stopped(settings), "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert {"api_url", "anon_key", "service_role_key", "webhook_api_key", "db_url", "redis_url",
            "queue_depth", "inbox_unapplied", "rejected_webhooks"} <= set(status)


def test_prod_hides_secrets(settings):
    prod = make_test_settings(settings.database_url, settings.instance_id, env="prod", jwt_secret="p" * 40,
                              db_authenticator_password="a-production-password", webhook_api_keys=["a-real-key"],
                              metrics_token="a-metrics-token", auth_site_url="https://app.example.com",
                              api_external_url=stopped(settings).public_url)
    values = json.loads(segbase(prod, "status", "-o", "json").stdout)
    for name in ("SERVICE_ROLE_KEY", "JWT_SECRET", "DB_URL", "WEBHOOK_API_KEY", "REDIS_URL"):
        assert values[name].startswith("<hidden")
    assert values["ANON_KEY"] == api_key(prod, "anon")
