"""The admin API: `GET|POST /admin/users`, `GET|PUT|DELETE /admin/users/{id}` (GoTrue's `internal/api/admin.go`).
`/admin/generate_link` and `/invite` write mail tokens and live with the email flows (api/auth/views/email_flows.py).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, jsonify, request

from api.auth import admin
from api.auth.blueprint import auth_context, bp
from api.auth.bodies import _Body, parse_body
from api.auth.responses import user_json
from api.identity import credentials_from_request
from api.services import services


class AdminUserBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    email_confirm: bool | None = None
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    ban_duration: str | None = None
    role: str | None = None
    id: str | None = None


class AdminDeleteBody(_Body):
    should_soft_delete: bool | None = None


def require_admin() -> dict[str, Any]:
    _, bearer = credentials_from_request(request)
    return admin.require_admin(bearer, services().settings)


def _pagination_headers(response: Response, page: int, per_page: int, total: int) -> None:
    """GoTrue's `Link` (next, last) and `X-Total-Count`, which auth-js and supabase-py read for nextPage/lastPage."""
    last = max(1, -(-total // per_page))
    base = request.base_url

    def link(number: int) -> str:
        return base + "?" + urlencode({**request.args.to_dict(), "page": number, "per_page": per_page})

    parts = [f'<{link(page + 1)}>; rel="next"'] if last > page else []
    parts.append(f'<{link(last)}>; rel="last"')
    response.headers["Link"] = ", ".join(parts)
    response.headers["X-Total-Count"] = str(total)


@bp.get("/admin/users")
def admin_list_users():
    require_admin()
    page, per_page = admin.page_params(request.args.get("page"), request.args.get("per_page"))
    users, total = admin.list_users(auth_context(), page, per_page)
    response = jsonify({"users": [user_json(user) for user in users], "aud": "authenticated"})
    _pagination_headers(response, page, per_page, total)
    return response


@bp.post("/admin/users")
def admin_create_user():
    require_admin()
    body = parse_body(AdminUserBody)
    return jsonify(user_json(admin.create_user(auth_context(), body.model_dump(exclude_none=True))))


@bp.get("/admin/users/<user_id>")
def admin_get_user(user_id: str):
    require_admin()
    return jsonify(user_json(admin.get_user(auth_context(), user_id)))


@bp.put("/admin/users/<user_id>")
def admin_update_user(user_id: str):
    require_admin()
    body = parse_body(AdminUserBody)
    return jsonify(user_json(admin.update_user(auth_context(), user_id, body.model_dump(exclude_none=True))))


@bp.delete("/admin/users/<user_id>")
def admin_delete_user(user_id: str):
    require_admin()
    body = parse_body(AdminDeleteBody)
    admin.delete_user(auth_context(), user_id, soft=bool(body.should_soft_delete))
    return jsonify({})
