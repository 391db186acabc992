"""`segbase status`: what `supabase status` prints, in its formats and with its names, plus the pipeline's and dispatch's health.

    segbase status                 grouped, readable output (Supabase's `pretty`)
    segbase status -o env          API_URL="…" lines, sorted (eval "$(segbase status -o env)")
    segbase status -o json         the same names as a JSON object
    segbase status --json          the older lower-case keys (api_url, anon_key, …) with the health figures

The upper-case names are the Supabase CLI's (apps/cli-go/internal/status/status.go in supabase/cli: API_URL,
REST_URL, FUNCTIONS_URL, STUDIO_URL, DB_URL, JWT_SECRET, ANON_KEY, SERVICE_ROLE_KEY); STUDIO_URL is the console.
segbase adds its own (WEBHOOK_URL, WEBHOOK_API_KEY, REALTIME_URL, REDIS_URL) and the counts an operator acts on
(REJECTED_WEBHOOKS, FAILED_DISPATCHES when dispatch is installed). Like `supabase status`, `-o` exits 1 when the
stack is not running (nothing answers at API_URL), after printing what it knows and saying so on stderr.
"""
from __future__ import annotations

import json
from typing import Any

import httpx
import redis

from api.tokens import api_key
from broker.celery_app import celery_queue_depth
from db import console as console_db
from db.dispatch import dispatch_health
from db.engine import create_app_engine
from db.health import pipeline_lag
from db.uow import Caller, unit_of_work
from schemas.settings import Settings
from segbase.mailcatcher import catcher_url

HIDDEN = "<hidden: ENV is not dev>"
FORMATS = ("pretty", "env", "json")
# `--override-name KEY=NAME`, with the Supabase CLI's keys (its CustomName env tags).
OVERRIDABLE = {"api.url": "API_URL", "api.rest_url": "REST_URL", "api.functions_url": "FUNCTIONS_URL",
               "studio.url": "STUDIO_URL", "db.url": "DB_URL", "auth.jwt_secret": "JWT_SECRET",
               "auth.anon_key": "ANON_KEY", "auth.service_role_key": "SERVICE_ROLE_KEY"}


def collect_status(settings: Settings) -> dict[str, Any]:
    """The `--json` shape: lower-case keys, secrets hidden unless ENV=dev, then the health figures."""
    show_secrets = settings.env == "dev"
    status: dict[str, Any] = {
        "api_url": settings.public_url,
        "anon_key": api_key(settings, "anon"),  # public by design, like Supabase's anon key
        "service_role_key": api_key(settings, "service_role") if show_secrets else HIDDEN,
        "webhook_api_key": settings.webhook_api_keys[0] if show_secrets and settings.webhook_api_keys else HIDDEN,
        "db_url": settings.database_url if show_secrets else HIDDEN,
        "redis_url": settings.redis_url if show_secrets else HIDDEN,
        "dispatch_mode": settings.dispatch_mode,
    }
    status.update(_pipeline_health(settings))
    return status


def _pipeline_health(settings: Settings) -> dict[str, Any]:
    """Each part is reported on its own, so `segbase status` still prints when PostgreSQL or Redis is down."""
    health: dict[str, Any] = {}
    engine = create_app_engine(settings, pool_size=1, application_name="segbase-status")
    try:
        with unit_of_work(engine, Caller.service()) as uow:
            health.update(pipeline_lag(uow))
            health.update(dispatch_health(uow=uow))
            health["rejected_webhooks"] = console_db.count_rejected_webhooks(uow=uow)
            health["failed_dispatches"] = health["dispatch_failed"]
    except Exception as exc:  # noqa: BLE001 — status reports an unreachable part by name
        health["postgres"] = f"unreachable: {exc.__class__.__name__}"
    finally:
        engine.dispose()
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        health.update(celery_queue_depth(settings, client))
    except redis.RedisError as exc:
        health["redis"] = f"unreachable: {exc.__class__.__name__}"
    finally:
        client.close()
    return health


def api_running(settings: Settings) -> bool:
    """Whether a segbase API answers at API_URL (its liveness endpoint)."""
    try:
        return httpx.get(f"{settings.public_url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def supabase_values(settings: Settings, status: dict[str, Any], overrides: dict[str, str] | None = None
                    ) -> dict[str, Any]:
    """The status under the Supabase CLI's upper-case names (and segbase's own), renamed by `overrides`."""
    url = settings.public_url
    values: dict[str, Any] = {
        "API_URL": url,
        "REST_URL": f"{url}/rest/v1",
        "FUNCTIONS_URL": f"{url}/functions/v1",
        "REALTIME_URL": f"{url.replace('http', 'ws', 1)}/realtime/v1/websocket",
        "STUDIO_URL": settings.console_url,
        "WEBHOOK_URL": f"{url}/functions/v1/process-webhook",
        "DB_URL": status["db_url"],
        "REDIS_URL": status["redis_url"],
        "JWT_SECRET": settings.jwt_secret.get_secret_value() if settings.env == "dev" else HIDDEN,
        "ANON_KEY": status["anon_key"],
        "SERVICE_ROLE_KEY": status["service_role_key"],
        "WEBHOOK_API_KEY": status["webhook_api_key"],
    }
    mail_url = catcher_url(settings)
    if mail_url:  # the Supabase CLI's name for its local mail UI
        values["INBUCKET_URL"] = mail_url
    for key in ("rejected_webhooks", "failed_dispatches"):
        if key in status:
            values[key.upper()] = status[key]
    for key, name in (overrides or {}).items():
        default = OVERRIDABLE[key]
        values[name] = values.pop(default)
    return values


def render_env(values: dict[str, Any]) -> str:
    """KEY="value" lines sorted by name, quoted and escaped as godotenv (the Supabase CLI's encoder) writes them."""
    lines = []
    for name in sorted(values):
        value = values[name]
        if isinstance(value, int):
            lines.append(f"{name}={value}")
        else:
            escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("$", "\\$")
            lines.append(f'{name}="{escaped}"')
    return "\n".join(lines)


def render_json(values: dict[str, Any]) -> str:
    return json.dumps(values, indent=2)


def render_pretty(settings: Settings, status: dict[str, Any], values: dict[str, Any], running: bool) -> str:
    def rows(title: str, items: list[tuple[str, Any]]) -> list[str]:
        return [f" {title}", *(f"   {label:<20} {value}" for label, value in items if value is not None), ""]

    problems = [f"{name} is {status[part]} (check {setting})" for part, name, setting in (
        ("postgres", "PostgreSQL", "DATABASE_URL"), ("redis", "Redis", "REDIS_URL")) if part in status]
    pipeline = [("Rejected webhooks", f"{status.get('rejected_webhooks', '—')}  "
                 f"(the console lists them: {settings.console_url}/inbox?state=rejected&window=all)")]
    if "failed_dispatches" in status:
        pipeline.append(("Failed dispatches", status["failed_dispatches"]))
    pipeline += [("Inbox not applied", status.get("inbox_unapplied")),
                 ("Inbox lag (s)", status.get("inbox_oldest_unapplied_seconds")),
                 ("Outbox not sent", status.get("outbox_unsent")),
                 ("Outbox lag (s)", status.get("outbox_oldest_unsent_seconds")),
                 ("Celery queue depth", status.get("queue_depth")),
                 ("Celery unacked", status.get("queue_unacked"))]
    out = [running_line(settings, running), ""]
    out += rows("APIs", [("Project URL", values.get("API_URL")), ("REST", values.get("REST_URL")),
                         ("Edge Functions", values.get("FUNCTIONS_URL")), ("Realtime", values.get("REALTIME_URL")),
                         ("Webhook", values.get("WEBHOOK_URL"))])
    out += rows("Development tools", [("Console", values.get("STUDIO_URL")),
                                      ("Mail (auth mails)", values.get("INBUCKET_URL")
                                       or f"sent through SMTP {settings.smtp_host}:{settings.smtp_port}")])
    out += rows("Database", [("URL", values.get("DB_URL")), ("Redis", values.get("REDIS_URL"))])
    out += rows("Keys", [("anon", values.get("ANON_KEY")), ("service_role", values.get("SERVICE_ROLE_KEY")),
                         ("webhook (X-API-Key)", values.get("WEBHOOK_API_KEY")),
                         ("JWT secret", values.get("JWT_SECRET"))])
    out += rows("Pipeline", pipeline)
    out += [f" {problem}" for problem in problems]
    return "\n".join(out).rstrip() + "\n"


def running_line(settings: Settings, running: bool) -> str:
    if running:
        return f"segbase is running at {settings.public_url}."
    return (f"segbase is not running: nothing answers at {settings.public_url} "
            "(start it with `make run`, or `.venv/bin/segbase run`).")
