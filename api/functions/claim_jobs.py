"""POST /functions/v1/claim-jobs — a pull worker leases jobs (DISPATCH_MODE=pull, X-API-Key).

`{"max": N, "lease_seconds": S, "worker_id": "…", "wait_seconds": W}` returns up to N jobs, each leased to the
worker for S seconds (the same job object push delivers, plus `lease_id` and `lease_expires_at`). With none ready
it waits up to W seconds, woken by a notification (api/functions/leases.py), and answers `{"jobs": []}` when the
time is up. A job is never leased to two workers at once: the claim is one SKIP LOCKED statement.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import jsonify

from api.functions import bp
from api.functions.common import database_or_503
from api.functions.leases import at_most, job_signal, parse_body, render_jobs, seconds_until
from api.services import services
from db import dispatch
from db.uow import Caller, unit_of_work
from observability.metrics import DISPATCH_CLAIMS, DISPATCH_LATENCY, DISPATCH_LEASE_EXPIRIES
from schemas.dispatch import ClaimedJobs, ClaimJobsRequest

# A due job we did not get was being taken by a concurrent claim; look again after this instead of spinning.
RACE_BACKOFF_SECONDS = 0.05


@bp.post("/claim-jobs")
def claim_jobs():
    svc = services()
    settings = svc.settings
    body = parse_body(ClaimJobsRequest)
    at_most("max", body.max, settings.dispatch_claim_max_jobs, "DISPATCH_CLAIM_MAX_JOBS")
    at_most("lease_seconds", body.lease_seconds, settings.dispatch_max_lease_seconds, "DISPATCH_MAX_LEASE_SECONDS")
    at_most("wait_seconds", body.wait_seconds, settings.dispatch_max_wait_seconds, "DISPATCH_MAX_WAIT_SECONDS")

    records = _claim(svc, body)
    if not records and body.wait_seconds > 0:
        signal = job_signal(svc)
        deadline = time.monotonic() + body.wait_seconds
        with signal.waiting():
            while not records and (left := deadline - time.monotonic()) > 0:
                seen = signal.generation
                records = _claim(svc, body)
                if records:
                    break
                with database_or_503(), unit_of_work(svc.engine, Caller.service()) as uow:
                    due_in = seconds_until(dispatch.next_due(uow=uow, for_push=False))
                if due_in is not None and due_in <= 0:
                    due_in = RACE_BACKOFF_SECONDS
                signal.wait(seen, min(left, due_in if due_in is not None else left))

    jobs = render_jobs(svc, records)
    now = datetime.now(timezone.utc)
    DISPATCH_CLAIMS.inc(len(records))
    for record in records:
        if record.lease_was_expired:
            DISPATCH_LEASE_EXPIRIES.inc()
        if record.attempts == 1:
            DISPATCH_LATENCY.labels("pull").observe(max(0.0, (now - record.enqueued_at).total_seconds()))
    return jsonify(ClaimedJobs(jobs=jobs).model_dump(mode="json"))


def _claim(svc, body: ClaimJobsRequest) -> list[dispatch.JobRecord]:
    with database_or_503(), unit_of_work(svc.engine, Caller.service()) as uow:
        return dispatch.claim_jobs(uow=uow, max_jobs=body.max, lease_seconds=body.lease_seconds,
                                   worker_id=body.worker_id)
