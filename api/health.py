"""GET /healthz (alive) and GET /readyz (PostgreSQL, Redis and migrations), without credentials."""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from api.services import services
from db.migrate import discover_migrations
from db.uow import Caller, unit_of_work

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
