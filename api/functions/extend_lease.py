"""POST /functions/v1/extend-lease — a pull worker keeps its jobs (DISPATCH_MODE=pull, X-API-Key).

`{"lease_ids": [...], "lease_seconds": S}` extends each live lease to S seconds from now and returns those jobs
with freshly minted URLs; `lost` lists the lease ids that were no longer held (expired and back in the queue,
released, or their job finished or was cancelled) — the worker should stop working on those.
"""
from __future__ import annotations

from flask import jsonify

from api.functions import bp
from api.functions.common import database_or_503
from api.functions.leases import at_most, parse_body, render_jobs
from api.services import services
from db import dispatch
from db.uow import Caller, unit_of_work
from schemas.dispatch import ExtendedLeases, ExtendLeaseRequest


@bp.post("/extend-lease")
def extend_lease():
    svc = services()
    body = parse_body(ExtendLeaseRequest)
    at_most("lease_seconds", body.lease_seconds, svc.settings.dispatch_max_lease_seconds,
            "DISPATCH_MAX_LEASE_SECONDS")
    lease_ids = [str(lease_id) for lease_id in body.lease_ids]
    with database_or_503(), unit_of_work(svc.engine, Caller.service()) as uow:
        records = dispatch.extend_leases(uow=uow, lease_ids=lease_ids, lease_seconds=body.lease_seconds)
    kept = {record.lease_id for record in records}
    return jsonify(ExtendedLeases(jobs=render_jobs(svc, records),
                                  lost=[lease_id for lease_id in lease_ids if lease_id not in kept]
                                  ).model_dump(mode="json"))
