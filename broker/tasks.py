"""Every Celery task name, and the helpers that send tasks. The names are the contract: producers send by name,
so the API never imports the module that implements a task."""
from __future__ import annotations

from celery import Celery

APPLY_WEBHOOK_EVENT_TASK = "segbase.apply_webhook_event"
SWEEP_WEBHOOK_INBOX_TASK = "segbase.sweep_webhook_inbox"
CLEANUP_TASK = "segbase.maintenance.cleanup_old_results"
RECONCILE_TASK = "segbase.maintenance.reconcile_stuck_results"
DELIVER_DISPATCH_JOB_TASK = "segbase.dispatch.deliver_job"
STORAGE_JANITOR_TASK = "segbase.storage.janitor"


def enqueue_webhook_event(app: Celery, event_id: str) -> None:
    """Queue one inbox event for a worker; the message carries only the inbox id."""
    app.send_task(APPLY_WEBHOOK_EVENT_TASK, args=[event_id], ignore_result=True)


def enqueue_cleanup(app: Celery, job_id: str | None = None) -> None:
    """Queue a cleanup-old-results run for `job_id` (a job row the caller committed), or a new beat job."""
    app.send_task(CLEANUP_TASK, args=[job_id] if job_id else [])


def enqueue_delivery(app: Celery, job_id: str, attempt_id: str) -> None:
    """Queue one push attempt of a job; the message carries the job id and the attempt's token, nothing else
    (the URLs are minted by the attempt itself, so no signed URL ever sits in Redis)."""
    app.send_task(DELIVER_DISPATCH_JOB_TASK, args=[job_id, attempt_id], ignore_result=True)
