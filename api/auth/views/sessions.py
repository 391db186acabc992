"""Sign-up, the token grants and logout: `POST /signup`, `POST /token?grant_type=…`, `POST /logout`."""
from __future__ import annotations

from flask import Response, jsonify, request

from api.auth.admin import signup_disabled
from api.auth.blueprint import auth_context, bp, limiter, request_ip, user_claims
from api.auth.bodies import PasswordGrantBody, RefreshGrantBody, SignUpBody, parse_body
from api.auth.email_flows import confirmation_mailer
from api.auth.errors import AuthError, ErrorCode, validation_failed
from api.auth.responses import session_json, user_json
from api.auth.service import logout, refresh_session, sign_in_with_password, sign_up
from api.auth.views.email_flows import mail_enqueue, redirect_target
from api.services import services
from api.auth.views.oauth import PROVIDER_GRANTS, provider_grant


@bp.post("/signup")
def signup():
    ip = request_ip()
    limits = limiter()
    limits.sign_in_ip(ip)
    body = parse_body(SignUpBody)
    if services().settings.auth_disable_signup:  # GoTrue checks this before anything else of the body
        raise signup_disabled()
    if body.email is None and body.phone is None:
        raise AuthError("Anonymous sign-ins are disabled", status=422, code=ErrorCode.ANONYMOUS_PROVIDER_DISABLED)
    if body.email is None:
        raise AuthError("Phone signups are disabled", status=400, code=ErrorCode.PHONE_PROVIDER_DISABLED)
    if not body.password:
        raise validation_failed("Signup requires a valid password")
    limits.sign_in_email(body.email)
    ctx = auth_context()
    user, session = sign_up(ctx, email=body.email, password=body.password, data=body.data or {},
                            user_agent=request.headers.get("User-Agent"), ip=ip,
                            confirm=confirmation_mailer(ctx, mail_enqueue, redirect_target()))
    return jsonify(session_json(session) if session is not None else user_json(user))


@bp.post("/token")
def token():
    grant_type = request.args.get("grant_type") or request.form.get("grant_type")
    ip = request_ip()
    if grant_type == "password":
        limiter().sign_in_ip(ip)
        body = parse_body(PasswordGrantBody)
        if body.email is not None and body.phone is not None:
            raise validation_failed("Only an email address or phone number should be provided on login.")
        if body.email is None:
            raise AuthError("Invalid login credentials", status=400, code=ErrorCode.INVALID_CREDENTIALS)
        limiter().sign_in_email(body.email)
        password = body.password or ""
        session = sign_in_with_password(auth_context(), email=body.email, password=password,
                                        user_agent=request.headers.get("User-Agent"), ip=ip)
        weak = len(password) < services().settings.auth_password_min_length
        return jsonify(session_json(session, weak_password=weak))
    if grant_type == "refresh_token":
        limiter().refresh(ip)
        body = parse_body(RefreshGrantBody)
        return jsonify(session_json(refresh_session(auth_context(), refresh_token=body.refresh_token or "")))
    if grant_type in PROVIDER_GRANTS:
        return provider_grant(grant_type)
    raise AuthError("unsupported_grant_type", status=400, code=ErrorCode.INVALID_CREDENTIALS)


@bp.post("/logout")
def post_logout():
    claims = user_claims()
    logout(auth_context(), claims, request.args.get("scope") or "global")
    return Response(status=204)
