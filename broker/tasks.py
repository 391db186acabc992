"""Every Celery task name, and the helpers that send tasks. The names are the contract: producers send by name,
so the API never imports the module that implements a task."""
from __future__ import annotations

from celery import Celery

APPLY_WEBHOOK_EVENT_TASK = "segbase.apply_webhook_event"
APPLY_WEBHOOK_EVENTS_TASK = "segbase.apply_webhook_events"
SWEEP_WEBHOOK_INBOX_TASK = "segbase.sweep_webhook_inbox"
CLEANUP_TASK = "segbase.maintenance.cleanup_old_results"
RECONCILE_TASK = "segbase.maintenance.reconcile_stuck_results"
DELIVER_DISPATCH_JOB_TASK = "segbase.dispatch.deliver_job"
STORAGE_JANITOR_TASK = "segbase.storage.janitor"
SEND_AUTH_MAIL_TASK = "segbase.mail.send"
SWEEP_MAIL_OUTBOX_TASK = "segbase.mail.sweep_outbox"


def enqueue_webhook_event(app: Celery, event_id: str) -> None:
    """Queue one inbox event for a worker; the message carries only the inbox id."""
    app.send_task(APPLY_WEBHOOK_EVENT_TASK, args=[event_id], ignore_result=True)


def enqueue_webhook_events(app: Celery, event_ids: list[str], *, batch_size: int) -> None:
    """Queue a group of inbox events stored in one transaction: one message per `batch_size` ids (INBOX_BATCH_SIZE),
    each applied by one worker delivery."""
    size = max(1, batch_size)
    for start in range(0, len(event_ids), size):
        app.send_task(APPLY_WEBHOOK_EVENTS_TASK, args=[event_ids[start:start + size]], ignore_result=True)


def enqueue_cleanup(app: Celery, job_id: str | None = None) -> None:
    """Queue a cleanup-old-results run for `job_id` (a job row the caller committed), or a new beat job."""
    app.send_task(CLEANUP_TASK, args=[job_id] if job_id else [])


def enqueue_delivery(app: Celery, job_id: str, attempt_id: str) -> None:
    """Queue one push attempt of a job; the message carries the job id and the attempt's token, nothing else
    (the URLs are minted by the attempt itself, so no signed URL ever sits in Redis)."""
    app.send_task(DELIVER_DISPATCH_JOB_TASK, args=[job_id, attempt_id], ignore_result=True)


def enqueue_auth_mail(app: Celery, mail_id: str) -> None:
    """Queue one committed `internal.mail_outbox` row; the message carries only its id (never a link, code or
    address)."""
    app.send_task(SEND_AUTH_MAIL_TASK, args=[mail_id], ignore_result=True)
