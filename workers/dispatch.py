"""Push dispatch: the releaser that hands due jobs to delivery attempts, and the attempt that POSTs one job to
DISPATCH_URL as a Standard Webhooks message — on one of the releaser's own threads, or as a Celery task.

The queue's rules live in PostgreSQL (db/dispatch.py): the releaser marks each job `sending` under a fresh attempt
id, held for a bounded time, and hands the attempt (job id, attempt id) to one of its DISPATCH_RELAY_THREADS
delivery threads while one is free, or else to `segbase worker` as a Celery message carrying only those two ids.
The attempt begins in a committed transaction — after a cancel committed it finds the job finished and sends
nothing — mints the job's URLs, POSTs, and records the outcome. A relay or worker killed mid-delivery leaves the
job `sending` until its hold expires; then it is released again under a new attempt id, and the backend receives
the same `webhook-id`. A lost Celery message is cured the same way, so nothing about a job exists only in Redis.

The releaser runs in `segbase relay` when DISPATCH_MODE=push (one active per database: an advisory lock, like the
outbox relay), woken by NOTIFY on enqueue, on a job queued again and on re-enable (and on a freed in-flight slot
while the cap held jobs back), and otherwise when the next retry or hold expiry is due.
"""
from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx
import psycopg
from celery import current_app, shared_task
from celery.signals import worker_process_init
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from standardwebhooks import Webhook

from broker.celery_app import create_celery
from broker.tasks import DELIVER_DISPATCH_JOB_TASK, enqueue_delivery
from db import dispatch
from db.engine import process_engine
from db.errors import is_transient
from db.urls import authenticator_libpq_url
from db.uow import Caller, unit_of_work
from observability.metrics import DISPATCH_ATTEMPTS, DISPATCH_JOBS_FAILED, DISPATCH_LATENCY
from schemas.dispatch import DispatchMessage
from schemas.settings import Settings

log = logging.getLogger("segbase.dispatch")

RELEASER_LOCK_KEY = 0x5E6B_D15C  # session advisory lock of the one active releaser per database
FALLBACK_POLL_SECONDS = 5.0
STANDBY_RETRY_SECONDS = 1.0
HOLD_MARGIN_SECONDS = 10  # beyond an attempt's own time limits, before its hold expires and the job is re-released
RETRYABLE = (psycopg.OperationalError, sa_exc.OperationalError, sa_exc.DBAPIError, OSError)


def hold_seconds(settings: Settings) -> int:
    """How long an attempt holds its job: connect, send, wait for the response headers and read a short body
    (each bounded by DISPATCH_TIMEOUT_SECONDS), plus a margin. Past it the job is released again (its worker is
    presumed dead)."""
    return math.ceil(4 * settings.dispatch_timeout_seconds) + HOLD_MARGIN_SECONDS


def webhook_id(job_id: str) -> str:
    """The Standard Webhooks message id of a job: the same on every attempt, so the backend can deduplicate."""
    return f"msg_{job_id.replace('-', '')}"


# --- the attempt ---------------------------------------------------------------------------------------------
_clients: dict[int, httpx.Client] = {}
_sessions: dict[int, dispatch.PushSession] = {}
# A response body up to this size, announced by Content-Length, is read so that the connection is kept alive for
# the next attempt (a connection whose response was not read to its end is closed); a longer or chunked one is not.
DRAINED_BODY_MAX_BYTES = 64 * 1024


def push_session(settings: Settings) -> dispatch.PushSession:
    """This (prefork) process's bookkeeping session, opened after the fork; reopened after it broke."""
    session = _sessions.get(os.getpid())
    if session is None or session.closed:
        session = _sessions[os.getpid()] = dispatch.PushSession.connect(settings,
                                                                        application_name="segbase-dispatch")
    return session


def http_client(settings: Settings) -> httpx.Client:
    """One keep-alive client per (prefork) process, created after the fork."""
    client = _clients.get(os.getpid())
    if client is None:
        timeout = httpx.Timeout(settings.dispatch_timeout_seconds)
        limits = httpx.Limits(max_connections=settings.dispatch_max_in_flight,
                              max_keepalive_connections=settings.dispatch_max_in_flight)
        client = _clients[os.getpid()] = httpx.Client(timeout=timeout, limits=limits, follow_redirects=False)
    return client


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header as seconds from now: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def next_delay(settings: Settings, attempts: int) -> float | None:
    """The wait before the next attempt after `attempts` failed ones (with jitter); None when the budget is spent."""
    delays = settings.dispatch_retry_delays
    if attempts >= len(delays):
        return None
    jitter = settings.dispatch_retry_jitter
    return delays[attempts] * random.uniform(1 - jitter, 1 + jitter)


def classify(settings: Settings, response: httpx.Response | None, error: Exception | None,
             attempts: int) -> tuple[dispatch.AttemptResult, str | None, float | None]:
    """(result, detail, retry in seconds) of an attempt, from its response or transport error."""
    if response is not None and 200 <= response.status_code < 300:
        return "delivered", None, None
    if response is not None and response.status_code == 410:
        return "gone", "the backend answered 410 Gone: dispatch disabled until `segbase dispatch enable`", None
    if response is not None and response.status_code in (429, 503):
        wait = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(timezone.utc))
        if wait is not None:
            wait = min(wait, float(settings.dispatch_retry_after_max_seconds))
            return "throttled", f"HTTP {response.status_code}, Retry-After {wait:g} s", wait
    if response is not None:
        detail = f"HTTP {response.status_code}"
    elif isinstance(error, httpx.TimeoutException):
        detail = f"no response within DISPATCH_TIMEOUT_SECONDS ({settings.dispatch_timeout_seconds:g} s)"
    else:
        detail = f"{type(error).__name__}: {error}"[:300]
    return "failed", detail, next_delay(settings, attempts)


def post_job(settings: Settings, message_id: str, body: str) -> tuple[httpx.Response | None, Exception | None]:
    """POST one signed message. The status and headers decide; a short body (Content-Length up to
    DRAINED_BODY_MAX_BYTES) is read too, within one more DISPATCH_TIMEOUT_SECONDS, so that the connection is kept
    alive for the next attempt — a new TCP connection per attempt cost more than the rest of the POST."""
    assert settings.dispatch_url and settings.dispatch_signing_secret
    sent_at = datetime.now(timezone.utc)
    signature = Webhook(settings.dispatch_signing_secret.get_secret_value()).sign(message_id, sent_at, body)
    headers = {"content-type": "application/json", "webhook-id": message_id,
               "webhook-timestamp": str(math.floor(sent_at.timestamp())), "webhook-signature": signature,
               "user-agent": "segbase-dispatch"}
    try:
        with http_client(settings).stream("POST", settings.dispatch_url, content=body.encode(),
                                          headers=headers) as response:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) <= DRAINED_BODY_MAX_BYTES:
                try:
                    response.read()
                except httpx.HTTPError:
                    pass  # the answer is already decided; closing the response drops the connection
            return response, None
    except httpx.HTTPError as exc:
        return None, exc


def deliver(settings: Settings, engine: Engine, job_id: str, attempt_id: str,
            session: dispatch.PushSession | None = None) -> str:
    """One push attempt: begin (committed), mint URLs, POST, record. Returns the job's state after it. Begin and
    record go through `session` (this process's PushSession: one round trip each); `engine` serves the owner's RLS
    check of a stored source image."""
    session = session or push_session(settings)
    record = session.begin_attempt(job_id=job_id, attempt_id=attempt_id)
    if record is None:
        DISPATCH_ATTEMPTS.labels("stale").inc()
        log.info("dispatch job %s: attempt %s is stale (cancelled, finished or superseded); nothing sent",
                 job_id, attempt_id)
        return "stale"
    try:
        urls = dispatch.mint_job_urls(engine=engine, settings=settings, record=record)
    except dispatch.SourceImageNotReadableError:
        with unit_of_work(engine, Caller.service()) as uow:
            dispatch.fail_unreadable_source(uow=uow, job_id=job_id)
        DISPATCH_JOBS_FAILED.labels("source_image_not_readable").inc()
        log.warning("dispatch job %s: its owner may not read its source image; error source_image_not_readable",
                    job_id)
        return "finished"
    message = DispatchMessage(timestamp=datetime.now(timezone.utc),
                              data=dispatch.build_job(settings, record, urls))
    response, error = post_job(settings, webhook_id(job_id), message.model_dump_json())
    result, detail, retry_in = classify(settings, response, error, record.attempts)
    state = session.record_attempt(
        job_id=job_id, attempt_id=attempt_id, result=result, detail=detail, retry_in_seconds=retry_in,
        failure_threshold=settings.dispatch_circuit_failure_threshold,
        open_seconds=settings.dispatch_circuit_open_seconds,
        max_open_seconds=settings.dispatch_circuit_max_open_seconds)
    DISPATCH_ATTEMPTS.labels(result).inc()
    if result == "delivered":
        DISPATCH_LATENCY.labels("push").observe(
            max(0.0, (datetime.now(timezone.utc) - record.enqueued_at).total_seconds()))
    elif state == "finished":
        DISPATCH_JOBS_FAILED.labels("dispatch_failed").inc()
        log.warning("dispatch job %s: attempt %d failed (%s); retries exhausted, error dispatch_failed",
                    job_id, record.attempts, detail)
    elif result == "gone":
        log.error("dispatch job %s: %s", job_id, detail)
    else:
        log.info("dispatch job %s: attempt %d %s (%s); next in %.1f s", job_id, record.attempts, result, detail,
                 retry_in or 0)
    return state


@worker_process_init.connect(weak=False)
def _warm_up(**_: object) -> None:
    """In each new prefork child, open the database connection and the HTTP client before the first job, so the
    first delivery of a child does not pay for them."""
    app = current_app
    settings: Settings | None = getattr(app.conf, "segbase_settings", None)
    if settings is None or settings.dispatch_mode != "push":
        return
    try:
        push_session(settings)
        http_client(settings)
    except Exception as exc:  # noqa: BLE001 — warming up is an optimisation; the first job connects anyway
        log.warning("dispatch warm-up failed (%s)", type(exc).__name__)


def deliver_with_retries(settings: Settings, engine: Engine, session_of, job_id: str, attempt_id: str,
                         retries: int = 3, pause: float = 1.0) -> str | None:
    """`deliver` outside Celery (the releaser's own threads), with the retries the Celery task gets: a transient
    database failure is retried after `pause` (a broken session is reopened); anything else, or the last failure,
    is logged and left to the hold's expiry, which releases the job again. `session_of()` gives the calling
    thread's session; `session_of(drop=True)` closes a broken one (the next call opens another)."""
    for attempt in range(retries + 1):
        try:
            return deliver(settings, engine, job_id, attempt_id, session_of())
        except Exception as exc:  # noqa: BLE001 — a delivery thread must survive any failure of one attempt
            if isinstance(exc, psycopg.OperationalError):
                session_of(drop=True)
            if not is_transient(exc) or attempt == retries:
                log.exception("dispatch job %s: attempt %s failed (%s); it is released again when its hold expires",
                              job_id, attempt_id, type(exc).__name__)
                return None
            log.warning("dispatch job %s: transient %s; retrying the attempt", job_id, type(exc).__name__)
            time.sleep(pause)
    return None


@shared_task(name=DELIVER_DISPATCH_JOB_TASK, bind=True, ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=3)
def deliver_dispatch_job(self, job_id: str, attempt_id: str) -> str:
    """Deliver one push attempt of a job (see the module docstring). Idempotent: a redelivered message names an
    attempt that is no longer current and sends nothing."""
    settings: Settings = self.app.conf.segbase_settings
    try:
        return deliver(settings, process_engine(settings, application_name="segbase-dispatch"), job_id, attempt_id)
    except Exception as exc:
        if isinstance(exc, psycopg.OperationalError) and (broken := _sessions.pop(os.getpid(), None)):
            broken.close()  # reopened by the retry (or the next attempt this process runs)
        if not is_transient(exc):
            raise  # the hold expires and the job is released again; the attempt budget bounds a poison job
        log.warning("dispatch job %s: transient %s; retrying the attempt", job_id, type(exc).__name__)
        raise self.retry(exc=exc, countdown=1) from exc


# --- the releaser --------------------------------------------------------------------------------------------
class DispatchReleaser:
    """Hands due jobs to delivery attempts; one active per database.

    It works on the one connection that holds the advisory lock and LISTENs, set up as a PushSession: a look is
    one statement (release + when to look next). Notifications that arrive while it runs are kept by psycopg and
    served by the next wait, so none is missed.

    An attempt goes to one of its own DISPATCH_RELAY_THREADS delivery threads while one is free — no Redis, Celery
    consumer or pool child between the release and the POST, which was half the CPU of a delivery — and otherwise
    to `segbase worker` as a Celery message (job id, attempt id), so deliveries beyond one process still scale out.
    Either way the attempt is the same `deliver`, and a crash of either process is cured by the hold's expiry."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.celery = create_celery(settings)
        self.released = 0
        self.threads = settings.dispatch_relay_threads
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="dispatch-delivery") if self.threads else None
        self.busy = 0  # delivery threads working on an attempt (only the releaser thread adds to it)
        self.busy_lock = threading.Lock()
        self.local = threading.local()  # each delivery thread's PushSession
        self.engine = process_engine(settings, application_name="segbase-dispatch-relay",
                                     pool_size=max(1, self.threads))  # the owner's RLS check of a stored image
        if self.threads:
            http_client(settings)  # one keep-alive client, made before the delivery threads share it

    def _session(self, drop: bool = False) -> dispatch.PushSession | None:
        session = getattr(self.local, "session", None)
        if drop:
            if session is not None:
                session.close()
            self.local.session = None
            return None
        if session is None or session.closed:
            session = self.local.session = dispatch.PushSession.connect(self.settings,
                                                                        application_name="segbase-dispatch")
        return session

    def _deliver_here(self, job_id: str, attempt_id: str) -> None:
        try:
            deliver_with_retries(self.settings, self.engine, self._session, job_id, attempt_id)
        finally:
            with self.busy_lock:
                self.busy -= 1

    def hand_over(self, attempt: dispatch.ReleasedAttempt) -> None:
        """To a free delivery thread of this process, or else to the workers."""
        if self.pool is not None:
            with self.busy_lock:
                free = self.busy < self.threads
                if free:
                    self.busy += 1
            if free:
                try:
                    self.pool.submit(self._deliver_here, attempt.job_id, attempt.attempt_id)
                    return
                except RuntimeError:  # shutting down: the workers take it
                    with self.busy_lock:
                        self.busy -= 1
        try:
            enqueue_delivery(self.celery, attempt.job_id, attempt.attempt_id)
        except Exception as exc:  # noqa: BLE001 — the job stays held; when its hold expires it is released again
            log.warning("dispatch job %s released but not queued (%s); it is released again when its hold "
                        "expires", attempt.job_id, type(exc).__name__)

    def release_batch(self, session: dispatch.PushSession) -> dispatch.Release:
        """Release what the cap and the endpoint allow and hand each attempt over."""
        release = session.release(max_jobs=self.settings.dispatch_max_in_flight,
                                  max_in_flight=self.settings.dispatch_max_in_flight,
                                  hold_seconds=hold_seconds(self.settings),
                                  failure_threshold=self.settings.dispatch_circuit_failure_threshold)
        for attempt in release.attempts:
            self.hand_over(attempt)
        self.released += len(release.attempts)
        return release

    @staticmethod
    def seconds_until_due(release: dispatch.Release) -> float:
        if release.next_due is None:
            return FALLBACK_POLL_SECONDS
        wait = (release.next_due - datetime.now(timezone.utc)).total_seconds()
        # Due already but nothing released: the in-flight cap is full or dispatch is disabled; a NOTIFY (a freed
        # slot, re-enable) wakes us, the fallback poll covers a lost one.
        return FALLBACK_POLL_SECONDS if wait <= 0 else min(wait + 0.01, FALLBACK_POLL_SECONDS)

    def acquire(self, conn: psycopg.Connection) -> bool:
        announced = False
        while not self.stop.is_set():
            if conn.execute("select pg_try_advisory_lock(%s)", (RELEASER_LOCK_KEY,)).fetchone()[0]:
                return True
            if not announced:
                log.info("dispatch releaser standby: another one is active")
                announced = True
            self.stop.wait(STANDBY_RETRY_SECONDS)
        return False

    def serve(self, conn: psycopg.Connection) -> None:
        session = dispatch.PushSession(conn)
        conn.execute(f"listen {dispatch.NOTIFY_CHANNEL}")
        log.info("dispatch releaser active: pushing to %s", self.settings.dispatch_url)
        while not self.stop.is_set():
            # A full batch means more may be due at once; a smaller one means the queue or the cap is exhausted.
            while len((release := self.release_batch(session)).attempts) == self.settings.dispatch_max_in_flight \
                    and not self.stop.is_set():
                pass
            deadline = time.monotonic() + self.seconds_until_due(release)
            while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
                # Short waits keep SIGTERM responsive; a notification means "look again", except a delivery's
                # freed slot ('slot') while the cap held nothing back: every job that becomes due notifies ''
                # itself (or is the next due time), so looking again would find nothing to release.
                if any(note.payload != "slot" or release.capped
                       for note in conn.notifies(timeout=min(left, 1.0))):
                    for _ in conn.notifies(timeout=0):  # the ones that arrived meanwhile: one look serves them all
                        pass
                    break

    def run(self) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                with psycopg.connect(authenticator_libpq_url(self.settings), autocommit=True,
                                     application_name="segbase-dispatch-lock",
                                     options=f"-c statement_timeout={self.settings.db_statement_timeout_ms}") as conn:
                    if not self.acquire(conn):
                        break
                    backoff = 0.5
                    self.serve(conn)
            except RETRYABLE as exc:
                log.warning("dispatch releaser interrupted (%s); retrying in %.1fs", type(exc).__name__, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        if self.pool is not None:
            self.pool.shutdown(wait=True)  # attempts under way finish (each bounded by its timeouts)
        log.info("dispatch releaser stopped after releasing %d attempts", self.released)


def start_releaser(settings: Settings, stop: threading.Event) -> threading.Thread | None:
    """Run the releaser in a thread of this process when DISPATCH_MODE=push (segbase relay calls this)."""
    if settings.dispatch_mode != "push":
        return None
    thread = threading.Thread(target=DispatchReleaser(settings, stop).run, name="dispatch-releaser", daemon=True)
    thread.start()
    return thread
