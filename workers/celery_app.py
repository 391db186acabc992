"""The Celery app, built from Settings. Tasks are thin: they carry ids, call a db/ function, and are idempotent."""
from __future__ import annotations

from celery import Celery

from schemas.settings import Settings


def queue_name(settings: Settings, name: str = "default") -> str:
    return settings.redis_key("celery", name)


def create_celery(settings: Settings) -> Celery:
    """A Celery app whose queues and keys live under INSTANCE_ID, configured so an acknowledged event is never lost."""
    app = Celery("segbase", broker=settings.redis_url, backend=settings.redis_url, set_as_current=True)
    default_queue = queue_name(settings)
    app.conf.update(
        task_default_queue=default_queue,
        task_default_exchange=default_queue,
        task_default_routing_key=default_queue,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=3600,
        # No loss: a task is acknowledged only after it ran; a worker killed mid-task gets it redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": settings.celery_visibility_timeout_seconds,
            "global_keyprefix": settings.redis_key("kombu") + ":",
        },
        result_backend_transport_options={"global_keyprefix": settings.redis_key("celery-results") + ":"},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
    )
    app.conf.segbase_settings = settings
    return app
