"""/auth/v1: GoTrue-compatible email/password auth (sign-up, password and refresh grants, user, logout).

Request and response shapes, status codes and error codes are GoTrue's (supabase/auth `internal/api/`), so
supabase-py, supabase-js and supabase-flutter work unchanged. Every request needs an `apikey` (anon or
service_role), as behind Supabase's gateway. The views here are thin: bodies in api/auth/bodies.py, operations in
api/auth/service.py, JSON shapes in api/auth/responses.py, SQL in db/auth.py, access tokens in api/identity.py.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from api.auth.bodies import (
    PasswordGrantBody,
    RefreshGrantBody,
    SignUpBody,
    UpdateUserBody,
    parse_body,
)
from api.auth.errors import (
    API_VERSION,
    API_VERSION_HEADER,
    AuthError,
    ErrorCode,
    validation_failed,
)
from api.auth.limits import RateLimiter, client_ip
from api.auth.passwords import PasswordHasher
from api.auth.responses import session_json, user_json
from api.auth.service import (
    AuthContext,
    load_user,
    logout,
    refresh_session,
    sign_in_with_password,
    sign_up,
    update_user,
)
from api.errors import ApiError, GatewayError
from api.identity import (
    TokenError,
    credentials_from_request,
    decode_token,
    gateway_error,
    resolve_caller,
)
from api.services import services

bp = Blueprint("auth", __name__)


# --- per-process singletons ------------------------------------------------------------------------------------

def _context() -> AuthContext:
    svc = services()
    if svc.password_hasher is None:  # made on first use, in the serving process (after gunicorn forked and gevent patched)
        svc.password_hasher = PasswordHasher(svc.settings.auth_hash_threads)
    return AuthContext(svc.settings, svc.engine, svc.password_hasher)


def _limiter() -> RateLimiter:
    svc = services()
    if svc.auth_limiter is None:
        svc.auth_limiter = RateLimiter(svc.redis, svc.settings)
    return svc.auth_limiter


def _client_ip() -> str:
    return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), services().settings)


def _user_claims() -> dict[str, Any]:
    """The Bearer user token's verified claims, with GoTrue's errors (its session is checked by the operation)."""
    _, bearer = credentials_from_request(request)
    if not bearer:
        raise AuthError("This endpoint requires a valid Bearer token", status=401, code=ErrorCode.NO_AUTHORIZATION)
    try:
        claims = decode_token(bearer, services().settings)
    except TokenError as exc:
        raise AuthError(f"invalid JWT: unable to parse or verify signature, {exc.message}", status=403,
                        code=ErrorCode.BAD_JWT) from exc
    if claims.get("role") != "authenticated" or "sub" not in claims:
        raise AuthError("invalid claim: missing sub claim", status=403, code=ErrorCode.BAD_JWT)
    return claims


# --- hooks -----------------------------------------------------------------------------------------------------

@bp.before_request
def _require_apikey() -> None:
    apikey, _ = credentials_from_request(request)
    try:
        resolve_caller(apikey=apikey, bearer=None, settings=services().settings)
    except TokenError as exc:
        raise gateway_error(exc) from exc


@bp.after_request
def _api_version(response: Response) -> Response:
    response.headers[API_VERSION_HEADER] = API_VERSION
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED,
            413: ErrorCode.REQUEST_TOO_LARGE}.get(status, ErrorCode.VALIDATION_FAILED)
    return AuthError(exc.description or exc.name, status=status, code=code).response()


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    if isinstance(exc, (AuthError, GatewayError)) or type(exc).body is not ApiError.body:
        return exc.response()
    return AuthError(exc.message, status=exc.status, code=exc.code).response()


# --- endpoints -------------------------------------------------------------------------------------------------

@bp.post("/signup")
def signup():
    ip = _client_ip()
    limiter = _limiter()
    limiter.sign_in_ip(ip)
    body = parse_body(SignUpBody)
    if body.email is None and body.phone is None:
        raise AuthError("Anonymous sign-ins are disabled", status=422, code=ErrorCode.ANONYMOUS_PROVIDER_DISABLED)
    if body.email is None:
        raise AuthError("Phone signups are disabled", status=400, code=ErrorCode.PHONE_PROVIDER_DISABLED)
    if not body.password:
        raise validation_failed("Signup requires a valid password")
    limiter.sign_in_email(body.email)
    user, session = sign_up(_context(), email=body.email, password=body.password, data=body.data or {},
                            user_agent=request.headers.get("User-Agent"), ip=ip)
    return jsonify(session_json(session) if session is not None else user_json(user))


@bp.post("/token")
def token():
    grant_type = request.args.get("grant_type") or request.form.get("grant_type")
    ip = _client_ip()
    if grant_type == "password":
        _limiter().sign_in_ip(ip)
        body = parse_body(PasswordGrantBody)
        if body.email is not None and body.phone is not None:
            raise validation_failed("Only an email address or phone number should be provided on login.")
        if body.email is None:
            raise AuthError("Invalid login credentials", status=400, code=ErrorCode.INVALID_CREDENTIALS)
        _limiter().sign_in_email(body.email)
        password = body.password or ""
        session = sign_in_with_password(_context(), email=body.email, password=password,
                                        user_agent=request.headers.get("User-Agent"), ip=ip)
        weak = len(password) < services().settings.auth_password_min_length
        return jsonify(session_json(session, weak_password=weak))
    if grant_type == "refresh_token":
        _limiter().refresh(ip)
        body = parse_body(RefreshGrantBody)
        return jsonify(session_json(refresh_session(_context(), refresh_token=body.refresh_token or "")))
    raise AuthError("unsupported_grant_type", status=400, code=ErrorCode.INVALID_CREDENTIALS)


@bp.get("/user")
def get_user():
    return jsonify(user_json(load_user(_context(), _user_claims())))


@bp.put("/user")
def put_user():
    claims = _user_claims()
    body = parse_body(UpdateUserBody)
    return jsonify(user_json(update_user(_context(), claims, body.model_dump(exclude_unset=True))))


@bp.post("/logout")
def post_logout():
    claims = _user_claims()
    logout(_context(), claims, request.args.get("scope") or "global")
    return Response(status=204)
