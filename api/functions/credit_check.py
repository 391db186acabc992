"""GET|POST /functions/v1/credit-check — the signed-in user's balance, reservations and whether a job fits."""
from __future__ import annotations

from flask import jsonify, request

from api.errors import NotFoundError
from api.functions import bp
from api.functions.common import database_or_503, require_user
from api.services import services
from db.pipeline import credit_summary
from db.uow import Caller, unit_of_work
from schemas.webhook import CreditCheck


@bp.route("/credit-check", methods=["GET", "POST"])
def credit_check():
    caller = require_user(request)
    svc = services()
    # Read as service_role for the verified user: the price lives in internal.config, which users cannot read.
    with database_or_503(), unit_of_work(svc.engine, Caller.service()) as uow:
        summary = credit_summary(uow=uow, user_id=caller.user_id)
    if summary is None:
        raise NotFoundError("this user has no profile", code="profile_not_found")
    answer = CreditCheck(credits=summary.credits, reserved=summary.reserved, available=summary.available,
                         tier=summary.tier, cost_per_segmentation=summary.cost_per_segmentation,
                         can_submit=summary.can_submit)
    return jsonify(answer.model_dump())
