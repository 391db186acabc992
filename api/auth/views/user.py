"""The signed-in user: `GET /user`, `PUT /user`."""
from __future__ import annotations

from flask import jsonify

from api.auth.blueprint import auth_context, bp, limiter, request_ip, user_claims
from api.auth.bodies import UpdateUserBody, parse_body
from api.auth.responses import user_json
from api.auth.service import load_user, update_user


@bp.get("/user")
def get_user():
    return jsonify(user_json(load_user(auth_context(), user_claims())))


@bp.put("/user")
def put_user():
    claims = user_claims()
    limiter().user_update(request_ip(), str(claims["sub"]))
    body = parse_body(UpdateUserBody)
    return jsonify(user_json(update_user(auth_context(), claims, body.model_dump(exclude_unset=True))))
