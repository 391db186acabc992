"""/functions/v1/cleanup-old-results — run the retention cleanup on demand (service_role key only).

`POST` records a job in `internal.maintenance_jobs`, queues the same Celery task beat runs on
CLEANUP_SCHEDULE_CRON, and answers `202 {"job_id", "status": "queued"}`. `GET ?job_id=<id>` (or
`GET /cleanup-old-results/<id>`) answers the job: `202` while queued or running, `200` with its counts once
finished (`done`, `skipped` when another run held the lock, `failed`). The job lives in PostgreSQL, so its answer
survives a Redis flush or an API restart.
"""
from __future__ import annotations

import uuid

import redis
from flask import jsonify, request
from kombu.exceptions import KombuError

from api.errors import ApiError, NotFoundError, ServiceUnavailableError
from api.functions import bp
from api.functions.common import database_or_503, verified_claims
from api.services import services
from broker.tasks import enqueue_cleanup
from db import jobs
from db.uow import Caller, unit_of_work

QUEUE_RETRY_AFTER_SECONDS = 5


def require_service_role() -> None:
    """verify_jwt's checks (supabase/cli `internal/functions/serve/templates/main.ts`), then the role: only the service_role key may run maintenance."""
    if verified_claims(request).get("role") != "service_role":
        raise ApiError("cleanup-old-results needs the service_role key", status=403, code="forbidden")


@bp.post("/cleanup-old-results")
def start_cleanup():
    require_service_role()
    svc = services()
    with database_or_503(), unit_of_work(svc.engine, Caller.service()) as uow:
        job_id = jobs.create_job(uow, "request")
    try:
        enqueue_cleanup(services().celery, job_id)
    except (KombuError, redis.RedisError, OSError) as exc:
        with database_or_503(), unit_of_work(svc.engine, Caller.service()) as uow:
            jobs.finish_job(uow, job_id, "failed", detail="the job queue (Redis) was unavailable")
        raise ServiceUnavailableError("the job queue is unavailable; retry later",
                                      retry_after=QUEUE_RETRY_AFTER_SECONDS) from exc
    return jsonify(job_id=job_id, status="queued"), 202


@bp.get("/cleanup-old-results")
@bp.get("/cleanup-old-results/<job_id>")
def cleanup_job(job_id: str | None = None):
    require_service_role()
    job_id = job_id or request.args.get("job_id")
    if not job_id:
        raise ApiError("job_id is required: GET /functions/v1/cleanup-old-results?job_id=<id from the POST>",
                       code="job_id_required")
    try:
        job_id = str(uuid.UUID(job_id))
    except ValueError as exc:
        raise ApiError(f"job_id is not a uuid: {job_id[:64]!r}", code="invalid_job_id") from exc
    svc = services()
    with database_or_503(), unit_of_work(svc.engine, Caller.service()) as uow:
        job = jobs.get_job(uow, job_id)
    if job is None or job["kind"] != jobs.KIND_CLEANUP:
        raise NotFoundError(f"no cleanup job {job_id}", code="job_not_found")
    body = {"job_id": job["id"], "status": job["state"], "trigger": job["trigger"], "counts": job["counts"],
            "detail": job["detail"], "requested_at": job["requested_at"], "started_at": job["started_at"],
            "finished_at": job["finished_at"]}
    return jsonify(body), (200 if job["state"] in jobs.FINAL_JOB_STATES else 202)
