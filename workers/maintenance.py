"""Periodic maintenance tasks: cleanup-old-results (cron, or on demand through the function endpoint) and the
reconciliation of results stuck in pending/processing or in the dispatch queue, over db/cleanup.py,
db/reconcile.py, db/dispatch.py and db/jobs.py. Safe
to run twice: cleanup holds a database lock (a second run is recorded as `skipped`), reconciliation uses SKIP
LOCKED and only touches rows still in flight.

Unlike a request, this work is many bounded transactions (one per batch): the loops here own them, and each
db/ function runs one batch in the unit of work it is given.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from celery import shared_task
from celery.schedules import crontab
from sqlalchemy import Engine

from broker.tasks import CLEANUP_TASK, RECONCILE_TASK
from db import dispatch, jobs
from db.cleanup import (
    NEVER,
    CleanupBusy,
    cleanup_lock,
    delete_expired_batch,
    prune_inbox_batch,
)
from db.engine import process_engine
from db.outbox import prune_sent
from db.pipeline import inbox_reason
from db.reconcile import time_out_stuck_batch
from db.uow import Caller, UnitOfWork, unit_of_work
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


def _engine(settings: Settings) -> Engine:
    """One small engine per (prefork) process: the cleanup lock's connection plus one for the batches."""
    return process_engine(settings, application_name="segbase-maintenance", pool_size=2)


@dataclass
class CleanupCounts:
    """What one cleanup run did; stored as the job's `counts` and returned by the GET endpoint."""

    results: int = 0
    inbox: int = 0
    outbox: int = 0
    transactions: int = 0
    longest_transaction_ms: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["longest_transaction_ms"] = round(self.longest_transaction_ms, 1)
        values["seconds"] = round(self.seconds, 3)
        return values


def _timed_batch(engine: Engine, counts: CleanupCounts, work: Callable[[UnitOfWork], Any]) -> Any:
    """Run `work(uow)` in its own service_role transaction, recording its duration (commit included)."""
    started = time.perf_counter()
    with unit_of_work(engine, Caller.service()) as uow:
        value = work(uow)
    elapsed_ms = (time.perf_counter() - started) * 1000
    counts.transactions += 1
    counts.longest_transaction_ms = max(counts.longest_transaction_ms, elapsed_ms)
    return value


def _in_batches(engine: Engine, counts: CleanupCounts, field: str, prune: Callable[[UnitOfWork], int],
                batch_size: int, on_batch: Callable[[str, int], None] | None) -> None:
    while True:
        removed = _timed_batch(engine, counts, prune)
        setattr(counts, field, getattr(counts, field) + removed)
        if on_batch and removed:
            on_batch(field, removed)
        if removed < batch_size:
            return


def run_cleanup(engine: Engine, *, batch_size: int, inbox_retention_days: int, outbox_retention_hours: int,
                on_batch: Callable[[str, int], None] | None = None) -> CleanupCounts:
    """The cleanup-old-results work; the caller holds `cleanup_lock`. Results first, then finished inbox rows,
    then sent outbox rows (the results' DELETE events are unsent outbox rows, so they are never pruned before
    the relay sends them). `on_batch(table, rows)` is called after each committed batch (metrics).

    Results are deleted oldest first; the cursor only moves forward over rows kept on purpose (another tier's
    longer retention, a row still in flight), so each is read once per run instead of once per batch; `>=` in
    the SQL keeps rows sharing the cursor's timestamp in view. A batch smaller than `batch_size` ends a table."""
    counts = CleanupCounts()
    started = time.perf_counter()
    cursor = NEVER
    while True:
        deleted, newest = _timed_batch(engine, counts, lambda uow: delete_expired_batch(
            uow, cursor=cursor, batch_size=batch_size))
        counts.results += deleted
        if on_batch and deleted:
            on_batch("results", deleted)
        if deleted < batch_size:
            break
        cursor = newest
    _in_batches(engine, counts, "inbox", lambda uow: prune_inbox_batch(uow, inbox_retention_days, batch_size),
                batch_size, on_batch)
    _in_batches(engine, counts, "outbox", lambda uow: prune_sent(uow, outbox_retention_hours, batch_size),
                batch_size, on_batch)
    counts.seconds = time.perf_counter() - started
    return counts


def time_out_stuck_results(engine: Engine, timeout_seconds: int, batch_size: int,
                           dispatch_on: bool = False) -> list[str]:
    """Reconciliation: time out stuck results in batches, each in its own transaction; returns their ids."""
    return _all_batches(engine, batch_size, lambda uow: time_out_stuck_batch(
        uow, timeout_seconds=timeout_seconds, batch_size=batch_size, dispatch_on=dispatch_on))


def time_out_queued_jobs(engine: Engine, timeout_seconds: int, batch_size: int) -> list[str]:
    """Reconciliation of the dispatch queue: jobs neither delivered nor leased within DISPATCH_QUEUE_TIMEOUT_SECONDS
    end `error` (dispatch_timeout), in batches; returns their ids."""
    return _all_batches(engine, batch_size, lambda uow: dispatch.time_out_queued_batch(
        uow=uow, timeout_seconds=timeout_seconds, batch_size=batch_size))


def _all_batches(engine: Engine, batch_size: int, batch: Callable[[UnitOfWork], list[str]]) -> list[str]:
    done: list[str] = []
    while True:
        with unit_of_work(engine, Caller.service()) as uow:
            ids = batch(uow)
        done.extend(ids)
        if len(ids) < batch_size:
            return done


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
            job_id = jobs.create_job(uow, "beat")
    try:
        with cleanup_lock(engine):
            with unit_of_work(engine, Caller.service()) as uow:
                if not jobs.start_job(uow, job_id):
                    log.info("cleanup job %s already finished; redelivery ignored", job_id)
                    return {"job_id": job_id, "state": "already finished"}
                jobs.fail_interrupted_jobs(uow, job_id)
            counts = run_cleanup(
                engine, batch_size=settings.cleanup_batch_size,
                inbox_retention_days=settings.inbox_retention_days,
                outbox_retention_hours=settings.outbox_retention_hours,
                on_batch=lambda table, rows: CLEANUP_DELETED.labels(table).inc(rows))
            state, detail = "done", None
    except CleanupBusy as exc:
        counts, state, detail = CleanupCounts(), "skipped", str(exc)
    except Exception as exc:
        with unit_of_work(engine, Caller.service()) as uow:
            jobs.finish_job(uow, job_id, "failed", detail=f"{exc.__class__.__name__}: {exc}"[:500])
        CLEANUP_RUNS.labels("failed").inc()
        raise
    with unit_of_work(engine, Caller.service()) as uow:
        jobs.finish_job(uow, job_id, state, counts.as_dict(), detail)
    CLEANUP_RUNS.labels(state).inc()
    log.info("cleanup job %s %s: %s", job_id, state, counts.as_dict() if state == "done" else detail)
    return {"job_id": job_id, "state": state, "counts": counts.as_dict()}


@shared_task(name=RECONCILE_TASK, bind=True)
def reconcile_stuck_results(self) -> dict:
    """Time out results without progress for RESULT_TIMEOUT_SECONDS (error, metadata.error = "timeout")."""
    settings: Settings = self.app.conf.segbase_settings
    dispatch_on = settings.dispatch_mode != "off"
    ids = time_out_stuck_results(_engine(settings), settings.result_timeout_seconds, settings.cleanup_batch_size,
                                 dispatch_on=dispatch_on)
    if ids:
        RESULTS_TIMED_OUT.inc(len(ids))
        log.warning("timed out %d results stuck in pending/processing for over %d s", len(ids),
                    settings.result_timeout_seconds)
    queued: list[str] = []
    if dispatch_on:
        queued = time_out_queued_jobs(_engine(settings), settings.dispatch_queue_timeout_seconds,
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
            reason = inbox_reason(uow, event_id)
    except Exception:  # the event is applied and committed; a metric must never fail its task
        log.warning("could not read the reason of rejected event %s for metrics", event_id, exc_info=True)
        return
    if reason and reason.startswith("late:"):
        LATE_EVENTS.inc()
        log.warning("webhook event %s arrived after its result timed out: rejected, nothing charged", event_id)
