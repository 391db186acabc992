"""POST /functions/v1/release-jobs — a pull worker gives jobs back (DISPATCH_MODE=pull, X-API-Key).

`{"lease_ids": [...], "delay_seconds": D}` returns each leased job to the queue, takeable again after D seconds
(0: at once, and waiting claims are woken). `released` lists the job ids, `lost` the lease ids no longer held.
"""
from __future__ import annotations

from flask import jsonify

from api.functions import bp
from api.functions.common import database_or_503
from api.functions.leases import parse_body
from api.services import services
from db import dispatch
from db.uow import Caller, unit_of_work
from schemas.dispatch import ReleaseJobsRequest, ReleasedJobs


@bp.post("/release-jobs")
def release_jobs():
    svc = services()
    body = parse_body(ReleaseJobsRequest)
    lease_ids = [str(lease_id) for lease_id in body.lease_ids]
    with database_or_503(), unit_of_work(svc.engine, Caller.service()) as uow:
        released = dispatch.release_leases(uow=uow, lease_ids=lease_ids, delay_seconds=body.delay_seconds)
    return jsonify(ReleasedJobs(released=list(released.values()),
                                lost=[lease_id for lease_id in lease_ids if lease_id not in released]
                                ).model_dump(mode="json"))
