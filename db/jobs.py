"""Maintenance job records (`internal.maintenance_jobs`): what the cleanup-old-results endpoint answers from, so a
job's outcome survives a Redis flush or an API restart. Each function runs in the caller's unit of work."""
from __future__ import annotations

import json
from typing import Any

from db.uow import UnitOfWork

KIND_CLEANUP = "cleanup_old_results"
FINAL_JOB_STATES = ("done", "skipped", "failed")


def create_job(uow: UnitOfWork, trigger: str, kind: str = KIND_CLEANUP) -> str:
    return str(uow.execute("insert into internal.maintenance_jobs (kind, trigger) values (:kind, :trigger) "
                           "returning id", {"kind": kind, "trigger": trigger}).scalar())


def start_job(uow: UnitOfWork, job_id: str) -> bool:
    """Mark a job running; False when it already finished (a redelivered message must not run it twice).
    A job left `running` by a crashed worker may start again: the advisory lock keeps runs apart."""
    return uow.execute(
        "update internal.maintenance_jobs set state = 'running', started_at = now() "
        "where id = :id and state in ('queued', 'running') returning id", {"id": job_id}).first() is not None


def fail_interrupted_jobs(uow: UnitOfWork, current_job_id: str, kind: str = KIND_CLEANUP) -> int:
    """Jobs still `running` while we hold the lock were interrupted (their worker died); say so."""
    return uow.execute(
        "update internal.maintenance_jobs set state = 'failed', detail = 'interrupted: its worker stopped', "
        "finished_at = now() where kind = :kind and state = 'running' and id <> :id",
        {"kind": kind, "id": current_job_id}).rowcount


def finish_job(uow: UnitOfWork, job_id: str, state: str, counts: dict[str, Any] | None = None,
               detail: str | None = None) -> None:
    assert state in FINAL_JOB_STATES
    uow.execute("update internal.maintenance_jobs set state = :state, counts = cast(:counts as jsonb), "
                "detail = :detail, finished_at = now() where id = :id",
                {"id": job_id, "state": state, "counts": json.dumps(counts or {}), "detail": detail})


def get_job(uow: UnitOfWork, job_id: str) -> dict[str, Any] | None:
    row = uow.execute("select id, kind, trigger, state, counts, detail, requested_at, started_at, finished_at "
                      "from internal.maintenance_jobs where id = :id", {"id": job_id}).mappings().first()
    if row is None:
        return None
    job = dict(row)
    job["id"] = str(job["id"])
    for key in ("requested_at", "started_at", "finished_at"):
        job[key] = job[key].isoformat() if job[key] else None
    return job
