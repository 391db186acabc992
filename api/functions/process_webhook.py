"""POST /functions/v1/process-webhook — the inference backend reports a job's progress.

Authenticate (X-API-Key, plus Standard Webhooks signatures when WEBHOOK_SIGNING_SECRET is set), validate the body
(schemas/webhook.py), store it in the PostgreSQL inbox and commit — only then is it acknowledged (202) and queued
for a worker by id. Concurrent requests share one transaction and one Celery message (api/functions/inbox_writer.py).
A repeat of a stored event answers 200 duplicate. The worker applies it (workers/tasks.py).
"""
from __future__ import annotations

import hmac
import logging

from flask import jsonify, request
from standardwebhooks import Webhook

from api.errors import ApiError, UnauthorizedError
from api.functions import bp
from api.functions.common import database_or_503
from api.functions.inbox_writer import InboxWriter
from api.http import parse_json
from api.services import Services, services
from broker.tasks import enqueue_webhook_events
from db.pipeline import InboxEvent, StoredEvent, store_inbox_events
from db.uow import Caller, unit_of_work
from observability.metrics import WEBHOOK_EVENTS
from schemas.settings import Settings
from schemas.webhook import (
    WebhookAccepted,
    WebhookDuplicate,
    WebhookEvent,
    validation_context,
)

log = logging.getLogger("segbase.webhook")

MAX_WEBHOOK_ID_LENGTH = 256


def require_api_key(settings: Settings) -> None:
    """`X-API-Key` must equal one of WEBHOOK_API_KEYS; every key is compared in constant time."""
    presented = request.headers.get("X-API-Key", "").encode()
    matched = False
    for key in settings.webhook_api_keys:
        matched |= hmac.compare_digest(presented, key.encode())
    if not presented or not matched:
        raise UnauthorizedError("missing or invalid X-API-Key", code="invalid_api_key")


def require_signature(settings: Settings, raw_body: bytes) -> None:
    """With WEBHOOK_SIGNING_SECRET set, a Standard Webhooks signature (±5 minutes) is required too."""
    if settings.webhook_signing_secret is None:
        return
    try:
        Webhook(settings.webhook_signing_secret.get_secret_value()).verify(
            raw_body, dict(request.headers), json_parse=False)
    except Exception as exc:  # noqa: BLE001 — any malformed header, bad encoding or mismatch is a refusal
        reason = str(exc) if exc.__class__.__name__ == "WebhookVerificationError" else "malformed signature headers"
        raise UnauthorizedError(f"webhook signature refused: {reason}", code="invalid_signature") from exc


def parse_event(settings: Settings, raw_body: bytes) -> WebhookEvent:
    # Parsed whatever the Content-Type, as the original specification's Deno function (`await req.json()`) did; a
    # refusal (not JSON, too deep, a NUL character) is a JsonInputError naming the field (api/http.py).
    body = parse_json(raw_body, max_depth=settings.max_json_depth)
    # A pydantic ValidationError becomes 422 `validation_failed` naming each field (api/errors.py).
    return WebhookEvent.model_validate(body, context=validation_context(settings))


def store(svc: Services, event: InboxEvent) -> StoredEvent:
    """Store the event durably: with the concurrent requests' events (group commit), or alone when
    WEBHOOK_GROUP_COMMIT_MAX_EVENTS is 1."""
    settings = svc.settings
    if settings.webhook_group_commit_max_events > 1:
        if svc.inbox_writer is None:  # made on first use, in the serving process (after the fork, gevent patched)
            svc.inbox_writer = InboxWriter(svc.engine, svc.celery,
                                           max_events=settings.webhook_group_commit_max_events,
                                           window_seconds=settings.webhook_group_commit_window_ms / 1000,
                                           message_size=settings.inbox_batch_size)
        return svc.inbox_writer.store(event)
    with unit_of_work(svc.engine, Caller.service()) as uow:
        stored = store_inbox_events(uow=uow, events=[event])[0]
        if not stored.duplicate:
            uow.on_commit(lambda: _enqueue(svc, stored.event_id))
    return stored


def _enqueue(svc: Services, event_id: str) -> None:
    try:
        enqueue_webhook_events(svc.celery, [event_id], batch_size=1)
    except Exception as exc:  # noqa: BLE001 — the event is durable; the sweeper queues it later
        log.warning("webhook event %s stored but not queued (%s: %s); the inbox sweeper will queue it",
                    event_id, type(exc).__name__, exc)


@bp.post("/process-webhook")
def process_webhook():
    svc = services()
    settings = svc.settings
    require_api_key(settings)
    raw_body = request.get_data(cache=True)
    require_signature(settings, raw_body)
    event = parse_event(settings, raw_body)
    webhook_id = request.headers.get("webhook-id") or None
    if webhook_id is not None and len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
        raise ApiError(f"webhook-id header: at most {MAX_WEBHOOK_ID_LENGTH} characters", status=400,
                       code="invalid_header", field="webhook-id")
    key = f"webhook-id:{webhook_id}" if webhook_id else event.content_hash()

    with database_or_503():
        stored = store(svc, InboxEvent(idempotency_key=key, webhook_id=webhook_id, result_id=str(event.task_id),
                                       event_status=event.status, payload=event.inbox_payload()))
    WEBHOOK_EVENTS.labels("duplicate" if stored.duplicate else "accepted").inc()
    if stored.duplicate:
        return jsonify(WebhookDuplicate(event_id=stored.event_id).model_dump()), 200
    return jsonify(WebhookAccepted(event_id=stored.event_id).model_dump()), 202
