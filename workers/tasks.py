"""The pipeline's Celery tasks: apply a group of inbox events (what the API sends), apply one inbox event (what
the sweeper sends), and sweep the inbox for events Redis lost.

Both are thin and idempotent: they carry inbox ids, run as `service_role` and call db/pipeline.py; every rule
(status machine, reservation, one charge per result) is enforced by PostgreSQL, so a redelivered or concurrent
message changes nothing twice.
"""
from __future__ import annotations

import logging
import uuid

from celery import shared_task
from sqlalchemy import Engine

from broker.celery_app import max_retry_countdown
from broker.tasks import (
    APPLY_WEBHOOK_EVENT_TASK,
    APPLY_WEBHOOK_EVENTS_TASK,
    SWEEP_WEBHOOK_INBOX_TASK,
    enqueue_webhook_event,
)
from db.engine import process_engine
from db.errors import is_transient
from db.pipeline import BatchOutcome, apply_events, begin_batch, claim_events, claim_stale_events
from db.uow import Caller, unit_of_work
from schemas.settings import Settings
from workers.maintenance import record_webhook_outcome

log = logging.getLogger("segbase.pipeline")

SWEEP_BATCH = 500
SWEEP_MAX_BATCHES = 20  # at most 10,000 events per run; the next run continues

def worker_engine(settings: Settings) -> Engine:
    """One small `authenticator` engine per pool process (never inherited across the prefork fork)."""
    return process_engine(settings, application_name="segbase-worker")


def retry_countdown(settings: Settings, retries: int) -> int:
    """Exponential backoff (1, 2, 4 … s), capped inside the visibility timeout."""
    return min(2 ** retries, max_retry_countdown(settings))


def _settings(task) -> Settings:
    return task.app.conf.segbase_settings


@shared_task(name=APPLY_WEBHOOK_EVENT_TASK, bind=True, ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=None)
def apply_webhook_event(self, event_id: str) -> str:
    """Apply inbox event `event_id` once: count the attempt (committed), then apply it in one transaction.

    On the event's first delivery the attempt transaction also claims up to INBOX_BATCH_SIZE - 1 other events
    never attempted yet, and all are applied in one transaction; their own messages later find them final."""
    settings = _settings(self)
    try:
        event_id = str(uuid.UUID(str(event_id)))
    except ValueError:
        log.error("apply_webhook_event: %r is not an inbox id; message dropped", event_id)
        return "invalid"
    engine = worker_engine(settings)
    try:
        with unit_of_work(engine, Caller.service()) as uow:
            batch = begin_batch(uow=uow, event_id=event_id, max_attempts=settings.inbox_max_attempts,
                                max_events=settings.inbox_batch_size)
        leader = batch[0]
        if leader.state != "received":
            log.info("webhook event %s: %s (attempt %d), nothing to do", event_id, leader.state, leader.attempts)
            return leader.state
        members = [member.event_id for member in batch[1:]]
        outcomes = _apply_batch(engine, event_id, members)
    except Exception as exc:
        if not is_transient(exc):
            raise  # counted; the sweeper re-queues it and the attempts counter ends a poison event
        countdown = retry_countdown(settings, self.request.retries)
        log.warning("webhook event %s: transient %s; retry in %ds", event_id, type(exc).__name__, countdown)
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.inbox_max_attempts) from exc
    leader_state = "missing"
    for outcome in outcomes:
        if outcome.event_id == event_id:
            leader_state = outcome.state
        if not outcome.changed:
            continue  # already final: the delivery that finished it logged and counted it
        # A rejection changed nothing the sender expected: a warning, so it stands out (the console lists them too).
        log.log(logging.WARNING if outcome.state == "rejected" else logging.INFO, "webhook event %s: %s%s",
                outcome.event_id, outcome.state, f" ({outcome.reason})" if outcome.reason else "")
        record_webhook_outcome(engine, outcome.event_id, outcome.state)  # metrics: final inbox state, late events
    return leader_state


def _apply_batch(engine: Engine, leader: str, members: list[str]) -> list[BatchOutcome]:
    """Apply the leader and its members in one transaction; if that fails as a whole (one event's unexpected error,
    a deadlock), apply them one by one so one bad event cannot hold the others back. A member that fails alone
    stays `received` (its attempt counted) for its own message; the leader's error propagates to the task."""
    if members:
        try:
            with unit_of_work(engine, Caller.service()) as uow:
                return apply_events(uow=uow, event_ids=[leader, *members])
        except Exception as exc:
            log.warning("batch of %d events led by %s failed as a whole (%s); applying them one by one",
                        len(members) + 1, leader, type(exc).__name__)
    outcomes: list[BatchOutcome] = []
    for member in members:
        try:
            with unit_of_work(engine, Caller.service()) as uow:
                outcomes += apply_events(uow=uow, event_ids=[member])
        except Exception as exc:
            log.warning("webhook event %s (batch member): %s; left for its own delivery", member, type(exc).__name__)
    with unit_of_work(engine, Caller.service()) as uow:
        outcomes += apply_events(uow=uow, event_ids=[leader])
    return outcomes


@shared_task(name=APPLY_WEBHOOK_EVENTS_TASK, bind=True, ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=None)
def apply_webhook_events(self, event_ids: list[str]) -> dict[str, int]:
    """Apply a group of inbox events the API stored in one transaction: claim (count the first attempt of) the
    never-attempted ones — and other never-attempted events whose message has not come, up to INBOX_BATCH_SIZE in
    all — in one committed transaction, then apply them together in one more.

    An event of the group that was attempted before — this message is a redelivery after its worker died, or a
    retry — is not applied here: it goes back one id per message to `apply_webhook_event`, which applies it alone
    with the attempts counter (so a poison event never takes a group down with it twice). The same happens to an
    event that fails when the group falls back to one transaction per event."""
    settings = _settings(self)
    ids = []
    for event_id in event_ids if isinstance(event_ids, list) else []:
        try:
            ids.append(str(uuid.UUID(str(event_id))))
        except ValueError:
            log.error("apply_webhook_events: %r is not an inbox id; dropped from the group", event_id)
    engine = worker_engine(settings)
    try:
        with unit_of_work(engine, Caller.service()) as uow:
            claims = claim_events(uow=uow, event_ids=ids, max_events=settings.inbox_batch_size)
    except Exception as exc:
        if not is_transient(exc):
            raise  # nothing was counted; the sweeper re-queues the events
        countdown = retry_countdown(settings, self.request.retries)
        log.warning("webhook group of %d: transient %s; retry in %ds", len(ids), type(exc).__name__, countdown)
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.inbox_max_attempts) from exc
    claimed = [claim.event_id for claim in claims if claim.claimed]
    again = [claim.event_id for claim in claims if not claim.claimed and claim.state == "received"]
    outcomes, failed = _apply_group(engine, claimed)
    for outcome in outcomes:
        if not outcome.changed:
            continue
        log.info("webhook event %s: %s%s", outcome.event_id, outcome.state,
                 f" ({outcome.reason})" if outcome.reason else "")
        record_webhook_outcome(engine, outcome.event_id, outcome.state)
    for event_id in again + failed:
        try:
            enqueue_webhook_event(self.app, event_id)
        except Exception as exc:  # noqa: BLE001 — the event is in the inbox; the sweeper re-queues it
            log.warning("webhook event %s not re-queued (%s); the inbox sweeper will", event_id, type(exc).__name__)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
    if again or failed:
        counts["requeued"] = len(again) + len(failed)
    return counts


def _apply_group(engine: Engine, event_ids: list[str]) -> tuple[list[BatchOutcome], list[str]]:
    """Apply the claimed events in one transaction; if that fails as a whole, one transaction per event. Returns
    the outcomes and the events that failed alone (their attempt is counted; they are applied alone later)."""
    if not event_ids:
        return [], []
    try:
        with unit_of_work(engine, Caller.service()) as uow:
            return apply_events(uow=uow, event_ids=event_ids), []
    except Exception as exc:
        if len(event_ids) == 1:
            log.warning("webhook event %s: %s; re-queued to be applied alone", event_ids[0], type(exc).__name__)
            return [], event_ids
        log.warning("group of %d events failed as a whole (%s); applying them one by one", len(event_ids),
                    type(exc).__name__)
    outcomes: list[BatchOutcome] = []
    failed: list[str] = []
    for event_id in event_ids:
        try:
            with unit_of_work(engine, Caller.service()) as uow:
                outcomes += apply_events(uow=uow, event_ids=[event_id])
        except Exception as exc:
            log.warning("webhook event %s: %s; re-queued to be applied alone", event_id, type(exc).__name__)
            failed.append(event_id)
    return outcomes, failed


@shared_task(name=SWEEP_WEBHOOK_INBOX_TASK, bind=True, ignore_result=True)
def sweep_webhook_inbox(self) -> int:
    """Re-queue inbox events not applied within INBOX_SWEEP_DELAY_SECONDS; safe when two beats schedule it."""
    settings = _settings(self)
    return sweep_inbox(settings, self.app)


def sweep_inbox(settings: Settings, app) -> int:
    """One sweeper pass: claim stale events in batches (SKIP LOCKED) and queue their ids after each commit."""
    engine = worker_engine(settings)
    total = 0
    for _ in range(SWEEP_MAX_BATCHES):
        with unit_of_work(engine, Caller.service()) as uow:
            event_ids = claim_stale_events(uow=uow, min_age_seconds=settings.inbox_sweep_delay_seconds,
                                           limit=SWEEP_BATCH)
            uow.on_commit(lambda ids=event_ids: _enqueue_all(app, ids))
        total += len(event_ids)
        if len(event_ids) < SWEEP_BATCH:
            break
    if total:
        log.warning("inbox sweeper re-queued %d events not applied within %ds", total,
                    settings.inbox_sweep_delay_seconds)
    return total


def _enqueue_all(app, event_ids: list[str]) -> None:
    for event_id in event_ids:
        enqueue_webhook_event(app, event_id)
