"""`segbase status`: what `supabase status -o json` prints, plus pipeline health."""
from __future__ import annotations

from typing import Any

import redis
from sqlalchemy import Engine

from api.tokens import api_key
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


# kombu's Redis transport keeps priority messages in sibling lists named queue + "\x06\x16" + priority.
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"


def celery_queue_depth(settings: Settings, client: redis.Redis) -> dict[str, int]:
    """Messages waiting in this deployment's Celery queue, and messages delivered but not acknowledged."""
    from workers.celery_app import queue_name

    prefix = settings.redis_key("kombu") + ":"
    queue = queue_name(settings)
    keys = [prefix + (queue if step == 0 else f"{queue}{KOMBU_PRIORITY_SEPARATOR}{step}")
            for step in KOMBU_PRIORITY_STEPS]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    pipe.hlen(prefix + "unacked")
    *lengths, unacked = pipe.execute()
    return {"queue_depth": sum(lengths), "queue_unacked": unacked}


def pipeline_health(settings: Settings, engine: Engine, client: redis.Redis) -> dict[str, Any]:
    """Queue depth, the age of the oldest unapplied inbox event and of the oldest unsent outbox event."""
    from db.maintenance import pipeline_lag
    from db.uow import Caller, unit_of_work

    with unit_of_work(engine, Caller.service()) as uow:
        health = pipeline_lag(uow)
    health.update(celery_queue_depth(settings, client))
    return health


def _pipeline_health(settings: Settings) -> dict[str, Any]:
    """Each part is reported on its own, so `segbase status` still prints when PostgreSQL or Redis is down."""
    from db.engine import create_app_engine
    from db.maintenance import pipeline_lag
    from db.uow import Caller, unit_of_work

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
