"""/auth/v1: GoTrue-compatible email/password auth (sign-up, password and refresh grants, user, logout).

Request and response shapes, status codes and error codes are GoTrue's (supabase/auth `internal/api/`), so
supabase-py, supabase-js and supabase-flutter work unchanged. Every request needs an `apikey` (anon or service_role), as
behind Supabase's gateway. Operations live in api/auth/service.py, SQL in db/auth.py, tokens in api/identity.py.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, ValidationError
from werkzeug.exceptions import HTTPException

from api.auth.errors import (
    API_VERSION,
    API_VERSION_HEADER,
    AuthError,
    bad_json,
    validation_failed,
)
from api.auth.limits import RateLimiter, client_ip
from api.auth.passwords import PasswordHasher
from api.auth.service import (
    AuthContext,
    load_user,
    logout,
    refresh_session,
    session_json,
    sign_in_with_password,
    sign_up,
    update_user,
    user_json,
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


# --- request bodies --------------------------------------------------------------------------------------------

class _Body(BaseModel):
    # Clients add fields we do not use (gotrue_meta_security, code_challenge…): ignored, as GoTrue does.
    model_config = ConfigDict(extra="ignore")


class SignUpBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    data: dict[str, Any] | None = None


class PasswordGrantBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None


class RefreshGrantBody(_Body):
    refresh_token: str | None = None


class UpdateUserBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    data: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None


def _parse(model: type[_Body]) -> Any:
    raw = request.get_data(cache=True)  # beyond MAX_REQUEST_BYTES this raises 413, handled below
    if not raw.strip():
        payload: Any = {}
    else:
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_json(str(exc)) from exc
    if not isinstance(payload, dict):
        raise bad_json("expected a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise validation_failed(f"{field}: {first['msg']}") from exc


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
        raise AuthError("This endpoint requires a valid Bearer token", status=401, code="no_authorization")
    try:
        claims = decode_token(bearer, services().settings)
    except TokenError as exc:
        raise AuthError(f"invalid JWT: unable to parse or verify signature, {exc.message}", status=403,
                        code="bad_jwt") from exc
    if claims.get("role") != "authenticated" or "sub" not in claims:
        raise AuthError("invalid claim: missing sub claim", status=403, code="bad_jwt")
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
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(status, "validation_failed")
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
    body = _parse(SignUpBody)
    if body.email is None and body.phone is None:
        raise AuthError("Anonymous sign-ins are disabled", status=422, code="anonymous_provider_disabled")
    if body.email is None:
        raise AuthError("Phone signups are disabled", status=400, code="phone_provider_disabled")
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
        body = _parse(PasswordGrantBody)
        if body.email is not None and body.phone is not None:
            raise validation_failed("Only an email address or phone number should be provided on login.")
        if body.email is None:
            raise AuthError("Invalid login credentials", status=400, code="invalid_credentials")
        _limiter().sign_in_email(body.email)
        password = body.password or ""
        session = sign_in_with_password(_context(), email=body.email, password=password,
                                        user_agent=request.headers.get("User-Agent"), ip=ip)
        weak = len(password) < services().settings.auth_password_min_length
        return jsonify(session_json(session, weak_password=weak))
    if grant_type == "refresh_token":
        _limiter().refresh(ip)
        body = _parse(RefreshGrantBody)
        return jsonify(session_json(refresh_session(_context(), refresh_token=body.refresh_token or "")))
    raise AuthError("unsupported_grant_type", status=400, code="invalid_credentials")


@bp.get("/user")
def get_user():
    return jsonify(user_json(load_user(_context(), _user_claims())))


@bp.put("/user")
def put_user():
    claims = _user_claims()
    body = _parse(UpdateUserBody)
    return jsonify(user_json(update_user(_context(), claims, body.model_dump(exclude_unset=True))))


@bp.post("/logout")
def post_logout():
    claims = _user_claims()
    logout(_context(), claims, request.args.get("scope") or "global")
    return Response(status=204)
