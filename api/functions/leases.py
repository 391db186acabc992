"""What the pull endpoints share (claim-jobs, extend-lease, release-jobs): the X-API-Key check and DISPATCH_MODE,
the request bodies and their bounds, minting each leased job's URLs, and this process's notification listener
(api/functions/job_signal.py) that wakes long-polling claims."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TypeVar

from flask import request
from pydantic import BaseModel

from api.errors import ApiError
from api.functions.common import database_or_503
from api.functions.job_signal import JobSignal
from api.functions.process_webhook import require_api_key
from api.services import Services, services
from db import dispatch
from db.uow import Caller, unit_of_work
from observability.metrics import DISPATCH_JOBS_FAILED
from schemas.dispatch import DispatchJob
from schemas.settings import Settings

log = logging.getLogger("segbase.dispatch")

Body = TypeVar("Body", bound=BaseModel)


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
