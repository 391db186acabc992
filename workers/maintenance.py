"""Periodic maintenance tasks: cleanup-old-results (cron, or on demand through the function endpoint) and the
reconciliation of results stuck in pending/processing (and of jobs stuck in the dispatch queue). Thin tasks over db/maintenance.py, safe to run twice:
cleanup holds a database lock (a second run is recorded as `skipped`), reconciliation uses SKIP LOCKED and only
touches rows still in flight.
"""
from __future__ import annotations

import logging
import os

from celery import shared_task
from celery.schedules import crontab
from sqlalchemy import Engine

from broker.tasks import CLEANUP_TASK, RECONCILE_TASK
from db import dispatch, maintenance
from db.engine import create_app_engine
from db.uow import Caller, unit_of_work
from observability.metrics import (
    CLEANUP_DELETED,
    CLEANUP_RUNS,
    DISPATCH_JOBS_FAILED,
    LATE_EVENTS,
    RESULTS_TIMED_OUT,
    WEBHOOK_EVENTS,
)
from schemas.settings import Settings

log = logging.getLogger("segbase.maintenance")


_engines: dict[int, Engine] = {}


def _engine(settings: Settings) -> Engine:
    """One small engine per (prefork) process: the cleanup lock's connection plus one for the batches."""
    engine = _engines.get(os.getpid())
    if engine is None:
        engine = _engines[os.getpid()] = create_app_engine(settings, pool_size=2,
                                                           application_name="segbase-maintenance")
    return engine


def parse_cron(expression: str) -> crontab:
    """CLEANUP_SCHEDULE_CRON: five cron fields (minute hour day-of-month month day-of-week), UTC."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"CLEANUP_SCHEDULE_CRON needs 5 cron fields, got {expression!r}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                   day_of_week=day_of_week)


def beat_schedule(settings: Settings) -> dict[str, dict]:
    """The maintenance entries of the beat schedule (merged into the pipeline's in workers/main.py)."""
    return {
        "cleanup-old-results": {"task": CLEANUP_TASK, "schedule": parse_cron(settings.cleanup_schedule_cron)},
        "reconcile-stuck-results": {"task": RECONCILE_TASK, "schedule": float(settings.reconcile_interval_seconds),
                                    "options": {"expires": settings.reconcile_interval_seconds}},
    }


@shared_task(name=CLEANUP_TASK, bind=True)
def cleanup_old_results(self, job_id: str | None = None) -> dict:
    """Run cleanup-old-results for `job_id` (on demand) or a new beat job; returns the job's final record."""
    settings: Settings = self.app.conf.segbase_settings
    engine = _engine(settings)
    if job_id is None:
        with unit_of_work(engine, Caller.service()) as uow:
            job_id = maintenance.create_job(uow, "beat")
    try:
        with maintenance.cleanup_lock(engine):
            with unit_of_work(engine, Caller.service()) as uow:
                if not maintenance.start_job(uow, job_id):
                    log.info("cleanup job %s already finished; redelivery ignored", job_id)
                    return {"job_id": job_id, "state": "already finished"}
                maintenance.fail_interrupted_jobs(uow, job_id)
            counts = maintenance.run_cleanup(
                engine, batch_size=settings.cleanup_batch_size,
                inbox_retention_days=settings.inbox_retention_days,
                outbox_retention_hours=settings.outbox_retention_hours,
                on_batch=lambda table, rows: CLEANUP_DELETED.labels(table).inc(rows))
            state, detail = "done", None
    except maintenance.CleanupBusy as exc:
        counts, state, detail = maintenance.CleanupCounts(), "skipped", str(exc)
    except Exception as exc:
        with unit_of_work(engine, Caller.service()) as uow:
            maintenance.finish_job(uow, job_id, "failed", detail=f"{exc.__class__.__name__}: {exc}"[:500])
        CLEANUP_RUNS.labels("failed").inc()
        raise
    with unit_of_work(engine, Caller.service()) as uow:
        maintenance.finish_job(uow, job_id, state, counts.as_dict(), detail)
    CLEANUP_RUNS.labels(state).inc()
    log.info("cleanup job %s %s: %s", job_id, state, counts.as_dict() if state == "done" else detail)
    return {"job_id": job_id, "state": state, "counts": counts.as_dict()}


@shared_task(name=RECONCILE_TASK, bind=True)
def reconcile_stuck_results(self) -> dict:
    """Time out results without progress for RESULT_TIMEOUT_SECONDS (error, metadata.error = "timeout")."""
    settings: Settings = self.app.conf.segbase_settings
    dispatch_on = settings.dispatch_mode != "off"
    ids = maintenance.time_out_stuck_results(_engine(settings), settings.result_timeout_seconds,
                                             settings.cleanup_batch_size, dispatch_on=dispatch_on)
    if ids:
        RESULTS_TIMED_OUT.inc(len(ids))
        log.warning("timed out %d results stuck in pending/processing for over %d s", len(ids),
                    settings.result_timeout_seconds)
    queued = []
    if dispatch_on:
        queued = dispatch.time_out_queued_jobs(_engine(settings), settings.dispatch_queue_timeout_seconds,
                                               settings.cleanup_batch_size)
        if queued:
            DISPATCH_JOBS_FAILED.labels("dispatch_timeout").inc(len(queued))
            log.warning("%d jobs were neither delivered nor leased within %d s (DISPATCH_QUEUE_TIMEOUT_SECONDS): "
                        "error dispatch_timeout", len(queued), settings.dispatch_queue_timeout_seconds)
    return {"timed_out": len(ids), "dispatch_timed_out": len(queued)}


def record_webhook_outcome(engine: Engine, event_id: str, state: str) -> None:
    """Count an applied inbox event by its final state; a rejection is read back to tell a late event (its
    result timed out first: reason "late: ...", set by the webhook_inbox_mark_late trigger) from the rest."""
    WEBHOOK_EVENTS.labels(state).inc()
    if state != "rejected":
        return
    try:
        with unit_of_work(engine, Caller.service()) as uow:
            reason = maintenance.inbox_reason(uow, event_id)
    except Exception:  # the event is applied and committed; a metric must never fail its task
        log.warning("could not read the reason of rejected event %s for metrics", event_id, exc_info=True)
        return
    if reason and reason.startswith("late:"):
        LATE_EVENTS.inc()
        log.warning("webhook event %s arrived after its result timed out: rejected, nothing charged", event_id)
