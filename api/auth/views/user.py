"""The signed-in user: `GET /user`, `PUT /user`."""
from __future__ import annotations

from flask import jsonify

from api.auth.blueprint import auth_context, bp, limiter, request_ip, user_claims
from api.auth.bodies import UpdateUserBody, parse_body
from api.auth.email_flows import change_email
from api.auth.responses import user_json
from api.auth.service import load_user, update_user
from api.auth.views.email_flows import mail_enqueue, redirect_target


@bp.get("/user")
def get_user():
    return jsonify(user_json(load_user(auth_context(), user_claims())))


@bp.put("/user")
def put_user():
    claims = user_claims()
    limiter().user_update(request_ip(), str(claims["sub"]))
    body = parse_body(UpdateUserBody)
    changes = body.model_dump(exclude_unset=True)
    ctx = auth_context()
    if changes.get("email"):  # an email change: mailed for confirmation (api/auth/email_flows.py)
        changed = change_email(ctx, mail_enqueue, claims, changes.pop("email"), redirect_target())
        if not any(changes.get(key) is not None for key in ("password", "data", "phone", "app_metadata")):
            return jsonify(user_json(changed))
    return jsonify(user_json(update_user(ctx, claims, changes)))
