"""The signed-in user's identities: `GET /user/identities/authorize` (link a provider through the redirect flow)
and `DELETE /user/identities/{id}` (unlink). AUTH_MANUAL_LINKING_ENABLED=false turns both off (404
`manual_linking_disabled`), as GoTrue's SECURITY_MANUAL_LINKING_ENABLED does."""
from __future__ import annotations

from flask import jsonify

from api.auth.blueprint import auth_context, bp, limiter, request_ip, user_claims
from api.auth.oauth.accounts import unlink_identity
from api.auth.service import load_user, utcnow
from api.auth.views.oauth import authorize_response, linking_user, manual_linking_enabled
from db import auth as auth_db
from db.uow import unit_of_work


@bp.get("/user/identities/authorize")
def link_identity():
    manual_linking_enabled()
    user = linking_user()
    limiter().user_update(request_ip(), user["id"])
    return authorize_response(user["id"])


@bp.delete("/user/identities/<identity_id>")
def delete_identity(identity_id: str):
    manual_linking_enabled()
    ctx = auth_context()
    user = load_user(ctx, user_claims())
    limiter().user_update(request_ip(), user["id"])
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        unlink_identity(uow, user=user, identity_id=identity_id, now=utcnow())
    return jsonify({})
