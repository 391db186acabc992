"""GET /healthz (alive) and GET /readyz (PostgreSQL, Redis and migrations), without credentials."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text

from api.services import services
from db.migrate import discover_migrations
from db.uow import Caller, unit_of_work
from segbase.metrics import render_metrics

bp = Blueprint("health", __name__)


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
    from segbase.status import pipeline_health

    svc = services()
    body, content_type = render_metrics(lambda: pipeline_health(svc.settings, svc.engine, svc.redis))
    return Response(body, content_type=content_type)
