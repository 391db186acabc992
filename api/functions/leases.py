"""What the pull endpoints share (claim-jobs, extend-lease, release-jobs): the X-API-Key check and DISPATCH_MODE,
the request bodies and their bounds, minting each leased job's URLs, and the per-process notification listener
that wakes long-polling claims.

The listener is one LISTEN connection per API process (a greenlet under gunicorn's gevent workers): every NOTIFY on
`segbase_dispatch` (a job enqueued, a lease released, …) bumps a generation counter, and a waiting claim wakes when
it changes — or when the next due time it read (a retry, a lease about to expire) arrives. No claim polls.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TypeVar

import psycopg
from flask import request
from pydantic import BaseModel

from api.errors import ApiError
from api.functions.common import database_or_503
from api.functions.process_webhook import require_api_key
from api.services import Services, services
from db import dispatch
from db.uow import Caller, unit_of_work
from db.urls import authenticator_libpq_url
from observability.metrics import DISPATCH_JOBS_FAILED
from schemas.dispatch import DispatchJob
from schemas.settings import Settings

log = logging.getLogger("segbase.dispatch")

Body = TypeVar("Body", bound=BaseModel)
LISTEN_RETRY_SECONDS = 1.0


class TooManyWaitersError(ApiError):
    status, code = 429, "too_many_waiters"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class JobSignal:
    """Wakes long-polling claims on NOTIFY segbase_dispatch; counts and bounds them (DISPATCH_MAX_WAITERS)."""

    def __init__(self, settings: Settings) -> None:
        self.conninfo = authenticator_libpq_url(settings)
        self.max_waiters = settings.dispatch_max_waiters
        self.condition = threading.Condition()
        self.generation = 0
        self.waiters = 0
        self.listening = threading.Event()
        threading.Thread(target=self._listen, name="dispatch-signal", daemon=True).start()

    def _bump(self) -> None:
        with self.condition:
            self.generation += 1
            self.condition.notify_all()

    def _listen(self) -> None:
        while True:
            try:
                with psycopg.connect(self.conninfo, autocommit=True, application_name="segbase-dispatch-signal",
                                     connect_timeout=5) as conn:
                    conn.execute(f"listen {dispatch.NOTIFY_CHANNEL}")
                    self.listening.set()
                    self._bump()  # (re)connected: whatever was notified meanwhile is looked at again
                    for _ in conn.notifies():
                        self._bump()
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("dispatch listener lost its connection (%s); reconnecting", type(exc).__name__)
                threading.Event().wait(LISTEN_RETRY_SECONDS)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Hold one of the DISPATCH_MAX_WAITERS long-poll slots of this process (429 when none is free)."""
        with self.condition:
            if self.waiters >= self.max_waiters:
                raise TooManyWaitersError(
                    f"this API process already holds {self.max_waiters} waiting claim-jobs calls "
                    "(DISPATCH_MAX_WAITERS); retry, or claim with wait_seconds 0")
            self.waiters += 1
        try:
            yield
        finally:
            with self.condition:
                self.waiters -= 1

    def wait(self, seen: int, timeout: float) -> None:
        """Return when a notification arrived after generation `seen` was read, or after `timeout` seconds."""
        with self.condition:
            self.condition.wait_for(lambda: self.generation != seen, timeout=max(0.0, timeout))


def job_signal(svc: Services) -> JobSignal:
    """This process's listener, started on first use (after gunicorn forked and gevent patched)."""
    if svc.dispatch_signal is None:
        svc.dispatch_signal = JobSignal(svc.settings)
    return svc.dispatch_signal


def require_pull_mode(settings: Settings) -> None:
    if settings.dispatch_mode != "pull":
        how = {"push": "jobs are pushed to DISPATCH_URL", "off": "dispatch is off"}[settings.dispatch_mode]
        raise ApiError(f"DISPATCH_MODE is {settings.dispatch_mode}: {how}; set DISPATCH_MODE=pull to claim jobs",
                       status=409, code="dispatch_mode")


def parse_body(model: type[Body]) -> Body:
    """Authenticate (X-API-Key), check the mode, and validate the JSON body (422 naming each bad field)."""
    settings = services().settings
    require_api_key(settings)
    require_pull_mode(settings)
    body = request.get_json(force=True, silent=False)
    return model.model_validate(body)


def at_most(field: str, value: float, limit: float, setting: str) -> None:
    if value > limit:
        raise ApiError(f"{field}: at most {limit:g} ({setting})", status=422, code="validation_failed",
                       fields=[{"field": field, "message": f"at most {limit:g} ({setting})"}])


def render_jobs(svc: Services, records: list[dispatch.JobRecord]) -> list[DispatchJob]:
    """Mint each leased job's URLs now (never stored); a job whose owner may not read its image ends error
    (source_image_not_readable) and is left out."""
    jobs = []
    for record in records:
        try:
            urls = dispatch.mint_job_urls(engine=svc.engine, settings=svc.settings, record=record)
        except dispatch.SourceImageNotReadableError:
            with database_or_503(), unit_of_work(svc.engine, Caller.service()) as uow:
                dispatch.fail_unreadable_source(uow=uow, job_id=record.result_id)
            DISPATCH_JOBS_FAILED.labels("source_image_not_readable").inc()
            log.warning("dispatch job %s: its owner may not read its source image; error "
                        "source_image_not_readable", record.result_id)
            continue
        jobs.append(dispatch.build_job(svc.settings, record, urls))
    return jobs


def seconds_until(moment: datetime | None) -> float | None:
    return None if moment is None else (moment - datetime.now(timezone.utc)).total_seconds()
