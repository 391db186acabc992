"""Entry points for `segbase worker` and `segbase beat`, and the beat schedule (one entry per periodic job)."""
from __future__ import annotations

import os
from typing import Any

from celery import Celery

from broker.celery_app import create_celery, queue_name
from broker.tasks import SWEEP_WEBHOOK_INBOX_TASK
from schemas.settings import Settings
from workers import mail, maintenance, storage

TASK_MODULES = ("workers.tasks", "workers.maintenance", "workers.storage", "workers.dispatch", "workers.mail")


def create_worker_celery(settings: Settings) -> Celery:
    """The Celery app of `segbase worker`/`beat`: the producer's app plus the modules that implement the tasks
    (imported now, so `app.tasks` names them in any process, not only once a worker started)."""
    app = create_celery(settings, include=TASK_MODULES)
    app.loader.import_default_modules()
    return app


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic jobs beat sends. Each job must be safe when two beats run (they use SKIP LOCKED / locks)."""
    schedule: dict[str, dict[str, Any]] = dict(maintenance.beat_schedule(settings))
    schedule.update(storage.beat_schedule(settings))
    schedule.update(mail.beat_schedule(settings))
    if settings.inbox_sweep_enabled:
        schedule["sweep-webhook-inbox"] = {
            "task": SWEEP_WEBHOOK_INBOX_TASK,
            "schedule": float(settings.inbox_sweep_interval_seconds),
            # A sweep nobody ran in time is superseded by the next one; never let them pile up.
            "options": {"expires": float(settings.inbox_sweep_interval_seconds)},
        }
    return schedule


def run_worker(settings: Settings, concurrency: int | None = None) -> int:
    app = create_worker_celery(settings)
    app.worker_main([
        "worker", "--loglevel", settings.log_level, "--pool", "prefork",
        "--concurrency", str(concurrency or settings.worker_concurrency),
        "--queues", queue_name(settings), "--without-gossip", "--without-mingle",
        # Unique per process, so several workers on one host keep distinct node names.
        "--hostname", f"{settings.instance_id}.{os.getpid()}@%h",
    ])
    return 0


def run_beat(settings: Settings) -> int:
    app = create_worker_celery(settings)
    app.conf.beat_schedule = beat_schedule(settings)
    # The in-memory scheduler: no schedule file to share or corrupt, so a standby beat (or a second one during a
    # rollout) can run on the same host. Every entry first runs one period after start, and every job is safe
    # when two beats send it.
    app.Beat(loglevel=settings.log_level, scheduler="celery.beat:Scheduler").run()
    return 0
