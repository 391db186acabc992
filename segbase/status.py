"""`segbase status`: what `supabase status -o json` prints, plus pipeline health."""
from __future__ import annotations

from typing import Any

import redis

from api.tokens import api_key
from broker.celery_app import celery_queue_depth
from db.engine import create_app_engine
from db.health import pipeline_lag
from db.uow import Caller, unit_of_work
from schemas.settings import Settings

HIDDEN = "<hidden: ENV is not dev>"


def collect_status(settings: Settings) -> dict[str, Any]:
    show_secrets = settings.env == "dev"
    status: dict[str, Any] = {
        "api_url": settings.public_url,
        "anon_key": api_key(settings, "anon"),  # public by design, like Supabase's anon key
        "service_role_key": api_key(settings, "service_role") if show_secrets else HIDDEN,
        "webhook_api_key": settings.webhook_api_keys[0] if show_secrets and settings.webhook_api_keys else HIDDEN,
        "db_url": settings.database_url if show_secrets else HIDDEN,
        "redis_url": settings.redis_url if show_secrets else HIDDEN,
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
