"""GET /healthz (alive) and GET /readyz (PostgreSQL, Redis and migrations), without credentials."""
from __future__ import annotations

import hmac
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request
from sqlalchemy import Engine, text

from api.services import services
from broker.celery_app import celery_queue_depth
from db.dispatch import dispatch_health
from db.health import pipeline_lag
from db.migrate import discover_migrations
from db.uow import Caller, unit_of_work
from observability.metrics import render_metrics
from schemas.settings import Settings

bp = Blueprint("health", __name__)


def pipeline_health(settings: Settings, engine: Engine, client: redis.Redis) -> dict[str, Any]:
    """Queue depth, the age of the oldest unapplied inbox event and of the oldest unsent outbox event."""
    with unit_of_work(engine, Caller.service()) as uow:
        health = pipeline_lag(uow)
        health.update(dispatch_health(uow=uow))
    health.update(celery_queue_depth(settings, client))
    return health


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    svc = services()
    checks: dict[str, str] = {}
    try:
        with unit_of_work(svc.engine, Caller.service()) as uow:
            applied = set(uow.connection.execute(text("select version from segbase_migrations.applied")).scalars())
        missing = [m.version for m in discover_migrations() if m.version not in applied]
        checks["postgres"] = "ok"
        checks["migrations"] = "ok" if not missing else f"pending: {', '.join(missing)}"
    except Exception as exc:  # noqa: BLE001 — readiness reports any failure by name
        checks["postgres"] = f"unreachable: {type(exc).__name__}"
        checks["migrations"] = "unknown"
    try:
        svc.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks), (200 if ready else 503)


@bp.get("/metrics")
def metrics():
    """Prometheus exposition; off with METRICS_ENABLED=false, behind a bearer token when METRICS_TOKEN is set."""
    settings = services().settings
    if not settings.metrics_enabled:
        return jsonify(error={"code": "not_found", "message": "metrics are disabled"}), 404
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}"
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return jsonify(error={"code": "unauthorized", "message": "metrics need the metrics token"}), 401
    svc = services()
    body, content_type = render_metrics(lambda: pipeline_health(svc.settings, svc.engine, svc.redis))
    return Response(body, content_type=content_type)
