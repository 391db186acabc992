"""The email flows: `POST /otp`, `POST /recover`, `POST /resend`, `GET|POST /verify`, and the admin API's
`POST /invite` and `POST /admin/generate_link`. Operations in api/auth/email_flows.py; every `redirect_to` goes
through `resolve_redirect` before it is stored or mailed."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import jsonify, redirect, request

from api.auth import email_flows
from api.auth.blueprint import OPEN_ENDPOINTS, auth_context, bp, limiter, request_ip
from api.auth.bodies import _Body, parse_body
from api.auth.errors import AuthError, ErrorCode
from api.auth.redirects import resolve_redirect
from api.auth.responses import session_json, user_json
from api.auth.views.admin import require_admin
from api.services import services
from broker.tasks import enqueue_auth_mail

# GoTrue's oauthErrorMap: the `error` of an error redirect, by status.
OAUTH_ERRORS = {400: "invalid_request", 401: "unauthorized_client", 403: "access_denied", 500: "server_error",
                503: "temporarily_unavailable"}


class OtpBody(_Body):
    email: str | None = None
    phone: str | None = None
    data: dict[str, Any] | None = None
    create_user: bool | None = None


class EmailBody(_Body):
    email: str | None = None
    type: str | None = None


class VerifyBody(_Body):
    type: str | None = None
    token_hash: str | None = None
    token: str | None = None
    email: str | None = None
    phone: str | None = None
    redirect_to: str | None = None


class InviteBody(_Body):
    email: str | None = None
    data: dict[str, Any] | None = None


class GenerateLinkBody(_Body):
    type: str | None = None
    email: str | None = None
    password: str | None = None
    new_email: str | None = None
    data: dict[str, Any] | None = None
    redirect_to: str | None = None
    redirectTo: str | None = None  # noqa: N815  (supabase-js puts `options.redirectTo` in the body too)


def mail_enqueue(mail_id: str) -> None:
    """Queue the send of a committed outbox row (its id only)."""
    enqueue_auth_mail(services().celery, mail_id)


def redirect_target(requested: str | None = None) -> str:
    """The `redirect_to` to store or mail: the request's (query first, then body) if allowed, else the Referer if
    allowed, else AUTH_SITE_URL."""
    return resolve_redirect(request.args.get("redirect_to") or requested, services().settings,
                            referer=request.headers.get("Referer"))


@bp.post("/otp")
def post_otp():
    ip = request_ip()
    limiter().sign_in_ip(ip)
    body = parse_body(OtpBody)
    if body.email is None:
        if body.phone is not None:
            raise AuthError("Phone logins are disabled", status=400, code=ErrorCode.PHONE_PROVIDER_DISABLED)
        raise AuthError("An email address is required", status=400, code=ErrorCode.VALIDATION_FAILED)
    limiter().sign_in_email(body.email)
    email_flows.send_magic_link(auth_context(), mail_enqueue, email=body.email,
                                create_user=body.create_user is not False, data=body.data or {},
                                redirect_to=redirect_target())
    return jsonify({})


@bp.post("/recover")
def post_recover():
    ip = request_ip()
    limiter().sign_in_ip(ip)
    body = parse_body(EmailBody)
    if not body.email:
        raise AuthError("Password recovery requires an email", status=400, code=ErrorCode.VALIDATION_FAILED)
    limiter().sign_in_email(body.email)
    email_flows.send_recovery(auth_context(), mail_enqueue, email=body.email, redirect_to=redirect_target())
    return jsonify({})


@bp.post("/resend")
def post_resend():
    limiter().sign_in_ip(request_ip())
    body = parse_body(EmailBody)
    if body.email:
        limiter().sign_in_email(body.email)
    email_flows.resend(auth_context(), mail_enqueue, kind=body.type, email=body.email, redirect_to=redirect_target())
    return jsonify({})


@bp.post("/verify")
def post_verify():
    limiter().sign_in_ip(request_ip())
    body = parse_body(VerifyBody)
    if body.phone:
        raise AuthError("Phone logins are disabled", status=400, code=ErrorCode.PHONE_PROVIDER_DISABLED)
    session, _ = email_flows.verify(auth_context(), kind=body.type, token_hash=body.token_hash, email=body.email,
                                    token=body.token, user_agent=request.headers.get("User-Agent"),
                                    ip=request_ip())
    return jsonify(session_json(session))


def _with_fragment(url: str, values: dict[str, Any]) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(fragment=urlencode(values)))


@bp.get("/verify")
def get_verify():
    """The link in a mail: verify, then 303 to the stored redirect with the session (or the error) in the fragment,
    as GoTrue's implicit flow does."""
    settings = services().settings
    fallback = redirect_target()
    try:
        limiter().sign_in_ip(request_ip())
        session, stored = email_flows.verify(auth_context(), kind=request.args.get("type"),
                                             token_hash=request.args.get("token") or None,
                                             user_agent=request.headers.get("User-Agent"), ip=request_ip())
    except AuthError as exc:
        return redirect(_with_fragment(fallback, {
            "error": OAUTH_ERRORS.get(exc.status, "server_error"), "error_code": exc.code,
            "error_description": exc.message, "sb": ""}), 303)
    target = resolve_redirect(stored, settings) if stored else fallback
    return redirect(_with_fragment(target, {
        "access_token": session.access.token, "expires_at": session.access.expires_at,
        "expires_in": session.access.expires_in, "refresh_token": session.refresh_token, "token_type": "bearer",
        "type": request.args.get("type"), "sb": ""}), 303)


OPEN_ENDPOINTS.add(f"{bp.name}.{get_verify.__name__}")  # the link in a mail carries no apikey


@bp.post("/invite")
def post_invite():
    require_admin()
    body = parse_body(InviteBody)
    if not body.email:
        raise AuthError("An email address is required", status=400, code=ErrorCode.VALIDATION_FAILED)
    user = email_flows.invite(auth_context(), mail_enqueue, email=body.email, data=body.data or {},
                              redirect_to=redirect_target())
    return jsonify(user_json(user))


@bp.post("/admin/generate_link")
def post_generate_link():
    require_admin()
    body = parse_body(GenerateLinkBody)
    user, issued = email_flows.generate_link(
        auth_context(), kind=body.type, email=body.email, password=body.password, data=body.data or {},
        new_email=body.new_email, redirect_to=redirect_target(body.redirect_to or body.redirectTo))
    return jsonify({**user_json(user), "action_link": issued.link, "email_otp": issued.token.otp,
                    "hashed_token": issued.token.token_hash, "verification_type": issued.kind,
                    "redirect_to": issued.redirect_to})
