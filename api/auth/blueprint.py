"""The /auth/v1 blueprint: the apikey gate, GoTrue's headers and error bodies, and what every view needs from the
request (the caller's claims, the client IP, the per-process auth singletons). Views live in api/auth/views/.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from api.auth.errors import API_VERSION, API_VERSION_HEADER, AuthError, ErrorCode
from api.auth.limits import RateLimiter, client_ip
from api.auth.passwords import PasswordHasher
from api.auth.service import AuthContext
from api.errors import ApiError, GatewayError, register_http_error_renderer
from api.identity import TokenError, credentials_from_request, decode_token, gateway_error, resolve_caller
from api.services import services

bp = Blueprint("auth", __name__)


# --- per-process singletons ------------------------------------------------------------------------------------

def auth_context() -> AuthContext:
    svc = services()
    if svc.password_hasher is None:  # made on first use, in the serving process (after gunicorn forked and gevent patched)
        svc.password_hasher = PasswordHasher(svc.settings.auth_hash_threads)
    return AuthContext(svc.settings, svc.engine, svc.password_hasher)


def limiter() -> RateLimiter:
    svc = services()
    if svc.auth_limiter is None:
        svc.auth_limiter = RateLimiter(svc.redis, svc.settings)
    return svc.auth_limiter


def request_ip() -> str:
    return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), services().settings)


def user_claims() -> dict[str, Any]:
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

# Endpoints a browser reaches without an apikey (Supabase's gateway leaves GoTrue's open routes open: a mailed
# link, an OAuth redirect). A view module adds its endpoint name here.
OPEN_ENDPOINTS: set[str] = set()


@bp.before_request
def _require_apikey() -> None:
    if request.endpoint in OPEN_ENDPOINTS:
        return
    apikey, _ = credentials_from_request(request)
    try:
        resolve_caller(apikey=apikey, bearer=None, settings=services().settings)
    except TokenError as exc:
        raise gateway_error(exc) from exc


@bp.after_request
def _api_version(response: Response) -> Response:
    response.headers[API_VERSION_HEADER] = API_VERSION
    response.headers["Cache-Control"] = "no-store"  # sessions, tokens and user data: never cached on the way
    return response


def _routing_error(exc: HTTPException) -> Response:
    """An unknown /auth/v1 path or a wrong method, in GoTrue's unversioned error shape (supabase/auth
    `internal/api/apierrors/apierrors.go::HTTPError`), so clients read `error_code`."""
    status = exc.code or 404
    code = ErrorCode.NOT_FOUND if status == 404 else ErrorCode.METHOD_NOT_ALLOWED
    message = "Not Found" if status == 404 else "Method Not Allowed"
    response = jsonify({"code": status, "error_code": code, "msg": message})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if status == 405 and isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


bp.record_once(lambda state: register_http_error_renderer(state.app, state.url_prefix or "", _routing_error))


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
