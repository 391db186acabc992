"""The Celery app, built from Settings. Tasks are thin: they carry ids, call a db/ function, and are idempotent.

No loss (docs/PIPELINE.md): a message is acknowledged only after its task ran (`acks_late`), a worker killed
mid-task gets it redelivered (`reject_on_worker_lost`; Redis restores unacknowledged messages after the visibility
timeout), each worker process reserves one message at a time (prefetch 1), and messages are published to the
default (anonymous) exchange, which routes by queue name without Redis-side binding keys — so a flushed or
replaced Redis still routes new messages. What Redis may lose anyway is re-queued from the PostgreSQL inbox.
"""
from __future__ import annotations

from collections.abc import Sequence

import redis
from celery import Celery

from schemas.settings import Settings


def queue_name(settings: Settings, name: str = "default") -> str:
    return settings.redis_key("celery", name)


def max_retry_countdown(settings: Settings) -> int:
    """The longest a retry may wait: well inside the visibility timeout, so a waiting retry (held unacknowledged
    by its worker) is never restored and run twice meanwhile."""
    return max(1, settings.celery_visibility_timeout_seconds // 4)


def broker_transport_options(settings: Settings) -> dict:
    visibility = settings.celery_visibility_timeout_seconds
    return {
        "visibility_timeout": visibility,
        # Scan for messages of dead workers often enough that they come back soon after the visibility timeout
        # (kombu's default sweep is every ~100 s); the scan is one ZRANGE under a short mutex.
        "unacked_restore_interval": max(1, min(10, visibility // 5)),
        "unacked_restore_throttle": 1,
        # A worker killed while holding the restore mutex must not block restores for kombu's default 5 minutes.
        "unacked_mutex_expire": max(5, min(300, visibility // 2)),
        "global_keyprefix": settings.redis_key("kombu") + ":",
        # Fail fast when Redis is gone: the API still answers 202 and the sweeper re-queues later.
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
        "retry_on_timeout": True,
    }


def create_celery(settings: Settings, *, include: Sequence[str] = ()) -> Celery:
    """A Celery app whose queues and keys live under INSTANCE_ID, configured so an acknowledged event is never lost.

    Producers (the API) build it without `include`; `segbase worker`/`beat` pass the task modules they run."""
    app = Celery("segbase", broker=settings.redis_url, backend=settings.redis_url, set_as_current=True,
                 include=list(include))
    default_queue = queue_name(settings)
    app.conf.update(
        task_default_queue=default_queue,
        # The anonymous exchange: routing needs no `_kombu.binding.*` key that a Redis flush would delete.
        task_default_exchange="",
        task_default_routing_key=default_queue,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=3600,
        # No loss: a task is acknowledged only after it ran; a worker killed mid-task gets it redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Lost broker connection: cancel running late-ack tasks (their messages come back), as Celery 6 will.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_timeout=2,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        result_backend_transport_options={"global_keyprefix": settings.redis_key("celery-results") + ":"},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
    )
    app.conf.segbase_settings = settings
    return app


# kombu's Redis transport keeps priority messages in sibling lists named queue + "\x06\x16" + priority.
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"


def celery_queue_depth(settings: Settings, client: redis.Redis) -> dict[str, int]:
    """Messages waiting in this deployment's Celery queue, and messages delivered but not acknowledged."""
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
