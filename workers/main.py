"""Entry points for `segbase worker` and `segbase beat`."""
from __future__ import annotations

from schemas.settings import Settings


def run_worker(settings: Settings, concurrency: int | None = None) -> int:
    from workers.celery_app import create_celery, queue_name

    app = create_celery(settings)
    app.worker_main([
        "worker", "--loglevel", settings.log_level, "--pool", "prefork",
        "--concurrency", str(concurrency or settings.worker_concurrency),
        "--queues", queue_name(settings), "--without-gossip", "--without-mingle",
        "--hostname", f"{settings.instance_id}@%h-%n",
    ])
    return 0


def run_beat(settings: Settings) -> int:
    from workers.celery_app import create_celery

    app = create_celery(settings)
    app.Beat(loglevel=settings.log_level, schedule=f"/tmp/segbase-beat-{settings.instance_id}.db").run()
    return 0
