"""SQL-facing functions of job dispatch: the queue's rules live in PostgreSQL
(db/migrations/20261202120000_dispatch_queue.sql) and these wrappers stay thin. Each takes an open unit of work
(`uow=`) as service_role and never commits — except the push bookkeeping on a `PushSession` (release, begin,
record), where each call is one SQL function in one statement, its own transaction.

The operator actions — `cancel_job`, `retry_job`, `enable_dispatch` — are what `segbase dispatch` and the console
call; each is one SQL function executable by service_role only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine

from db.storage.errors import StorageError
from db.storage.urls import (
    MASKS_BUCKET,
    mask_object_name,
    parse_authenticated_object_url,
    sign_download_url_as_user,
    sign_mask_upload_url,
)
from db.uow import UnitOfWork
from db.urls import authenticator_libpq_url
from schemas.dispatch import DispatchJob
from schemas.settings import Settings

NOTIFY_CHANNEL = "segbase_dispatch"
MASK_EXTENSION = "png"  # NOTIFYed on enqueue, a freed in-flight slot, a released lease, re-enable

AttemptResult = Literal["delivered", "failed", "throttled", "gone"]
JOB_COLUMNS = ("result_id", "user_id", "project_id", "text_prompt", "source_image_url", "created_at", "enqueued_at",
               "attempts")


@dataclass(frozen=True)
class JobRecord:
    """A job as the backend gets it, before URLs are minted: the result's input and the hold that covers it."""

    result_id: str
    user_id: str
    project_id: str | None
    text_prompt: str | None
    source_image_url: str
    created_at: datetime
    enqueued_at: datetime
    attempts: int
    hold_until: datetime  # push: the attempt's hold; pull: the lease's expiry
    lease_id: str | None = None  # pull only
    lease_was_expired: bool = False  # pull: this claim took over a lease that had expired


@dataclass(frozen=True)
class ReleasedAttempt:
    job_id: str
    attempt_id: str
    attempt: int


@dataclass(frozen=True)
class RetryOutcome:
    action: Literal["due_now", "resubmitted", "not_retryable", "missing"]
    job_id: str | None


def _record(row: Any, *, hold: str, lease: bool) -> JobRecord:
    return JobRecord(
        result_id=str(row.result_id), user_id=str(row.user_id),
        project_id=str(row.project_id) if row.project_id else None, text_prompt=row.text_prompt,
        source_image_url=row.source_image_url, created_at=row.created_at, enqueued_at=row.enqueued_at,
        attempts=row.attempts, hold_until=getattr(row, hold),
        lease_id=str(row.lease_id) if lease else None,
        lease_was_expired=bool(getattr(row, "lease_was_expired", False)))


# --- push ------------------------------------------------------------------------------------------------------
def release_jobs(*, uow: UnitOfWork, max_jobs: int, max_in_flight: int, hold_seconds: int,
                 failure_threshold: int) -> list[ReleasedAttempt]:
    """Hand due jobs to delivery attempts, within the in-flight cap and the endpoint's state (push releaser)."""
    rows = uow.execute("select result_id, attempt_id, attempts from internal.release_dispatch_jobs("
                       ":max_jobs, :max_in_flight, :hold, :threshold)",
                       {"max_jobs": max_jobs, "max_in_flight": max_in_flight, "hold": hold_seconds,
                        "threshold": failure_threshold}).all()
    return [ReleasedAttempt(str(row.result_id), str(row.attempt_id), row.attempts) for row in rows]


@dataclass(frozen=True)
class Release:
    """One look of the releaser: the attempts it started; whether the in-flight cap (or the half-open probe) may
    have held due jobs back, so that a freed slot matters; and when a job may next become takeable."""

    attempts: list[ReleasedAttempt]
    capped: bool
    next_due: datetime | None


class PushSession:
    """The push bookkeeping's own PostgreSQL session (the releaser's, and one per delivering worker process):
    autocommit, as service_role. Each call is one statement calling one SQL function, so it is one transaction
    and one round trip (prepared by psycopg after a few uses), instead of BEGIN + identity, the call and COMMIT.

    Its commits do not wait for the WAL flush (`synchronous_commit = off`): for the push bookkeeping only (release,
    begin, record), where a commit lost in a PostgreSQL crash only repeats a delivery under the same webhook-id —
    the job itself was enqueued by its result's own (flushed) commit, and a cancel's flushed commit flushes every
    earlier one. Claims (pull) and operator actions keep the flush."""

    SETUP = ("set role service_role; set request.jwt.claims = '{\"role\":\"service_role\"}'; "
             "set synchronous_commit = off")

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        conn.execute(self.SETUP)

    @classmethod
    def connect(cls, settings: Settings, *, application_name: str) -> PushSession:
        return cls(psycopg.connect(authenticator_libpq_url(settings), autocommit=True,
                                   application_name=application_name,
                                   options=f"-c statement_timeout={settings.db_statement_timeout_ms}"))

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PushSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, query: str, params: dict[str, Any]) -> list[Any]:
        with self.conn.cursor(row_factory=namedtuple_row) as cursor:
            return cursor.execute(query, params).fetchall()

    def release(self, *, max_jobs: int, max_in_flight: int, hold_seconds: int, failure_threshold: int) -> Release:
        """`release_jobs` and `next_due(for_push=True)` in one transaction, and whether the cap held jobs back."""
        [row] = self._rows("select result_ids, attempt_ids, attempts, capped, next_due "
                           "from internal.release_due_dispatch_jobs(%(max_jobs)s, %(max_in_flight)s, %(hold)s, "
                           "%(threshold)s)",
                           {"max_jobs": max_jobs, "max_in_flight": max_in_flight, "hold": hold_seconds,
                            "threshold": failure_threshold})
        attempts = [ReleasedAttempt(str(job), str(attempt), count)
                    for job, attempt, count in zip(row.result_ids, row.attempt_ids, row.attempts)]
        return Release(attempts, row.capped, row.next_due)

    def begin_attempt(self, *, job_id: str, attempt_id: str) -> JobRecord | None:
        """As `begin_attempt`: committed when this returns."""
        rows = self._rows(f"select {', '.join(JOB_COLUMNS)}, hold_until "
                          "from internal.begin_dispatch_attempt(%(job)s::uuid, %(attempt)s::uuid)",
                          {"job": job_id, "attempt": attempt_id})
        return _record(rows[0], hold="hold_until", lease=False) if rows else None

    def record_attempt(self, *, job_id: str, attempt_id: str, result: AttemptResult, detail: str | None,
                       retry_in_seconds: float | None, failure_threshold: int, open_seconds: int,
                       max_open_seconds: int) -> str:
        """As `record_attempt`."""
        [row] = self._rows(
            "select internal.record_dispatch_attempt(%(job)s::uuid, %(attempt)s::uuid, %(result)s, %(detail)s, "
            "%(retry_in)s::double precision, %(threshold)s, %(open_seconds)s, %(max_open_seconds)s) as state",
            {"job": job_id, "attempt": attempt_id, "result": result, "detail": detail, "retry_in": retry_in_seconds,
             "threshold": failure_threshold, "open_seconds": open_seconds, "max_open_seconds": max_open_seconds})
        return row.state


def begin_attempt(*, uow: UnitOfWork, job_id: str, attempt_id: str) -> JobRecord | None:
    """Start a push attempt (commit before sending); None when it is stale or the job finished or was cancelled."""
    row = uow.execute(f"select {', '.join(JOB_COLUMNS)}, hold_until "
                      "from internal.begin_dispatch_attempt(cast(:job as uuid), cast(:attempt as uuid))",
                      {"job": job_id, "attempt": attempt_id}).one_or_none()
    return None if row is None else _record(row, hold="hold_until", lease=False)


def record_attempt(*, uow: UnitOfWork, job_id: str, attempt_id: str, result: AttemptResult, detail: str | None,
                   retry_in_seconds: float | None, failure_threshold: int, open_seconds: int,
                   max_open_seconds: int) -> str:
    """Record how a push attempt ended; returns the job's state after it (delivered|queued|finished|stale)."""
    return uow.execute(
        "select internal.record_dispatch_attempt(cast(:job as uuid), cast(:attempt as uuid), :result, :detail, "
        ":retry_in, :threshold, :open_seconds, :max_open_seconds)",
        {"job": job_id, "attempt": attempt_id, "result": result, "detail": detail, "retry_in": retry_in_seconds,
         "threshold": failure_threshold, "open_seconds": open_seconds, "max_open_seconds": max_open_seconds},
    ).scalar_one()


# --- pull ------------------------------------------------------------------------------------------------------
def claim_jobs(*, uow: UnitOfWork, max_jobs: int, lease_seconds: int, worker_id: str) -> list[JobRecord]:
    """Lease up to `max_jobs` due jobs to `worker_id` (SKIP LOCKED: concurrent claimers get different jobs)."""
    rows = uow.execute(f"select {', '.join(JOB_COLUMNS)}, lease_id, lease_expires_at, lease_was_expired "
                       "from internal.claim_dispatch_jobs(:max_jobs, :lease_seconds, :worker)",
                       {"max_jobs": max_jobs, "lease_seconds": lease_seconds, "worker": worker_id}).all()
    return [_record(row, hold="lease_expires_at", lease=True) for row in rows]


def extend_leases(*, uow: UnitOfWork, lease_ids: list[str], lease_seconds: int) -> list[JobRecord]:
    """Extend live leases; the ones not returned were lost (expired, released, or their job finished)."""
    rows = uow.execute(f"select {', '.join(JOB_COLUMNS)}, lease_id, lease_expires_at "
                       "from internal.extend_dispatch_leases(cast(:ids as uuid[]), :lease_seconds)",
                       {"ids": lease_ids, "lease_seconds": lease_seconds}).all()
    return [_record(row, hold="lease_expires_at", lease=True) for row in rows]


def release_leases(*, uow: UnitOfWork, lease_ids: list[str], delay_seconds: int) -> dict[str, str]:
    """Give leased jobs back to the queue, due after `delay_seconds`; returns {lease id: job id} of those released
    (a lease missing from it was no longer held)."""
    rows = uow.execute("select result_id, lease_id from internal.release_dispatch_leases(cast(:ids as uuid[]), "
                       ":delay)", {"ids": lease_ids, "delay": delay_seconds}).all()
    return {str(row.lease_id): str(row.result_id) for row in rows}


# --- operator actions ------------------------------------------------------------------------------------------
def cancel_job(*, uow: UnitOfWork, job_id: str) -> Literal["cancelled", "already_finished", "missing"]:
    """Cancel a job: its result becomes error (metadata.error = "cancelled"), its reservation is released, and no
    attempt or lease starts after the transaction commits."""
    return uow.execute("select internal.cancel_dispatch_job(cast(:id as uuid))", {"id": job_id}).scalar_one()


def retry_job(*, uow: UnitOfWork, job_id: str) -> RetryOutcome:
    """Retry a dispatch: a job waiting for its next attempt becomes due now; one that failed or timed out in the
    queue is resubmitted as a new result of the same owner (its id is returned)."""
    row = uow.execute("select action, new_job_id from internal.retry_dispatch_job(cast(:id as uuid))",
                      {"id": job_id}).one()
    return RetryOutcome(row.action, str(row.new_job_id) if row.new_job_id else None)


def enable_dispatch(*, uow: UnitOfWork) -> bool:
    """Re-enable push dispatch (after a 410) and close the circuit; returns whether it was disabled."""
    return bool(uow.execute("select internal.enable_dispatch()").scalar_one())


# --- time limits and health -----------------------------------------------------------------------------------
def time_out_queued_batch(*, uow: UnitOfWork, timeout_seconds: int, batch_size: int) -> list[str]:
    """End up to `batch_size` jobs never delivered nor leased within `timeout_seconds` as error (dispatch_timeout);
    returns their ids (the reconciliation task loops over batches)."""
    return [str(i) for i in uow.execute("select internal.time_out_queued_dispatch_jobs(:timeout, :batch)",
                                        {"timeout": timeout_seconds, "batch": batch_size}).scalars()]


def next_due(*, uow: UnitOfWork, for_push: bool) -> datetime | None:
    """When a job may next become takeable (a retry, an expiring hold; for push not before a pause or an open
    circuit ends); None: nothing waits or is held."""
    return uow.execute("select internal.dispatch_next_due(:push)", {"push": for_push}).scalar_one()


def dispatch_health(*, uow: UnitOfWork) -> dict[str, Any]:
    """Queue depth, oldest waiting job, attempts and leases in flight, failures, and the endpoint's state."""
    row = uow.execute("select * from internal.dispatch_health()").mappings().one()
    return {
        "dispatch_queued": int(row["queued"]),
        "dispatch_ready": int(row["ready"]),
        "dispatch_oldest_waiting_seconds": round(float(row["oldest_waiting_seconds"]), 3),
        "dispatch_sending": int(row["sending"]),
        "dispatch_leased": int(row["leased"]),
        "dispatch_leases_expired": int(row["leases_expired"]),
        "dispatch_delivered": int(row["delivered"]),
        "dispatch_failed": int(row["failed"]),
        "dispatch_enabled": bool(row["enabled"]),
        "dispatch_disabled": not row["enabled"],
        "dispatch_disabled_reason": row["disabled_reason"],
        "dispatch_circuit_open": bool(row["circuit_open"]),
        "dispatch_consecutive_failures": int(row["consecutive_failures"]),
        "dispatch_paused": bool(row["paused"]),
    }


# --- the job as the backend sees it ------------------------------------------------------------------------------
class SourceImageNotReadableError(Exception):
    """The job's image is in segbase storage, but its owner may not read it: no URL is ever minted for it."""


@dataclass(frozen=True)
class JobUrls:
    source_image_url: str
    mask_upload_url: str
    expires_at: datetime


def url_lifetime(settings: Settings, hold_until: datetime) -> int:
    """Seconds the URLs of one delivery or lease live: DISPATCH_URL_TTL_SECONDS, or until the hold (lease) ends if
    that is later; at most what storage allows a signed URL (STORAGE_SIGNED_URL_MAX_EXPIRY_SECONDS)."""
    until_hold = math.ceil((hold_until - datetime.now(timezone.utc)).total_seconds())
    return min(max(settings.dispatch_url_ttl_seconds, until_hold), settings.storage_signed_url_max_expiry_seconds)


def mint_job_urls(*, engine: Engine, settings: Settings, record: JobRecord) -> JobUrls:
    """The URLs of one delivery or lease, minted now and never stored. An image in segbase storage (its
    authenticated object URL) is signed only if the job's owner may read it, checked under RLS as the owner —
    never as service_role; otherwise SourceImageNotReadableError. An image elsewhere is passed through as
    submitted. The mask upload URL is bound to masks/<user id>/<job id>.png and refused once the job is finished."""
    lifetime = url_lifetime(settings, record.hold_until)
    source = record.source_image_url
    stored = parse_authenticated_object_url(settings, source)
    if stored is not None:
        bucket, name = stored
        try:
            source = sign_download_url_as_user(engine, settings, user_id=record.user_id, bucket=bucket, name=name,
                                               expires_in=lifetime)
        except StorageError as exc:
            if exc.status >= 500:
                raise
            raise SourceImageNotReadableError(f"{bucket}/{name}: {exc.message}") from exc
    upload = sign_mask_upload_url(settings, user_id=record.user_id, result_id=record.result_id,
                                  expires_in=min(lifetime, settings.storage_signed_upload_expiry_seconds))
    return JobUrls(source_image_url=source, mask_upload_url=upload.url,
                   expires_at=datetime.now(timezone.utc) + timedelta(seconds=lifetime))


def build_job(settings: Settings, record: JobRecord, urls: JobUrls) -> DispatchJob:
    return DispatchJob(
        job_id=record.result_id, user_id=record.user_id, project_id=record.project_id,
        text_prompt=record.text_prompt, source_image_url=urls.source_image_url,
        mask_upload_url=urls.mask_upload_url,
        mask_path=f"{MASKS_BUCKET}/{mask_object_name(record.user_id, record.result_id, MASK_EXTENSION)}",
        callback_url=f"{settings.public_url}/functions/v1/process-webhook", created_at=record.created_at,
        attempt=record.attempts, urls_expire_at=urls.expires_at, lease_id=record.lease_id,
        lease_expires_at=record.hold_until if record.lease_id else None)


def fail_unreadable_source(*, uow: UnitOfWork, job_id: str) -> None:
    """End a job whose image its owner may not read: error `source_image_not_readable`, reservation released."""
    uow.execute("select 1 from public.segmentation_results where id = :id for update", {"id": job_id})
    uow.execute("select internal.fail_dispatch_job(cast(:id as uuid), 'source_image_not_readable', "
                "'the owner of the job may not read its source image')", {"id": job_id})
