"""GoTrue's error codes and bodies: `{"code", "message"}` with `X-Supabase-Api-Version: 2024-01-01`, which is what
makes the clients read `code` as the error's string code (supabase/auth `internal/api/errors.go`; auth-js
`packages/core/auth-js/src/lib/fetch.ts::handleError`)."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from api.errors import ApiError

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION = "2024-01-01"


class ErrorCode(StrEnum):
    """The error codes segbase's /auth/v1 answers, spelled as GoTrue's catalogue
    (supabase/auth `internal/api/apierrors/errorcode.go`); clients branch on them."""

    ANONYMOUS_PROVIDER_DISABLED = "anonymous_provider_disabled"
    BAD_JSON = "bad_json"
    BAD_JWT = "bad_jwt"
    EMAIL_EXISTS = "email_exists"
    EMAIL_NOT_CONFIRMED = "email_not_confirmed"
    INVALID_CREDENTIALS = "invalid_credentials"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NO_AUTHORIZATION = "no_authorization"
    NOT_ADMIN = "not_admin"
    NOT_FOUND = "not_found"
    OTP_DISABLED = "otp_disabled"
    OTP_EXPIRED = "otp_expired"
    OVER_EMAIL_SEND_RATE_LIMIT = "over_email_send_rate_limit"
    OVER_REQUEST_RATE_LIMIT = "over_request_rate_limit"
    PHONE_PROVIDER_DISABLED = "phone_provider_disabled"
    REFRESH_TOKEN_ALREADY_USED = "refresh_token_already_used"
    REFRESH_TOKEN_NOT_FOUND = "refresh_token_not_found"
    REQUEST_TOO_LARGE = "request_too_large"
    SAME_PASSWORD = "same_password"
    SESSION_EXPIRED = "session_expired"
    SESSION_NOT_FOUND = "session_not_found"
    SIGNUP_DISABLED = "signup_disabled"
    USER_ALREADY_EXISTS = "user_already_exists"
    USER_BANNED = "user_banned"
    USER_NOT_FOUND = "user_not_found"
    VALIDATION_FAILED = "validation_failed"
    WEAK_PASSWORD = "weak_password"


class OAuthErrorCode(StrEnum):
    """The `error` of GoTrue's OAuth-shaped answers (RFC 6749 section 5.2 names)."""

    INVALID_REQUEST = "invalid_request"


class AuthError(ApiError):
    """An /auth/v1 error as GoTrue sends it; `data` adds fields (e.g. `weak_password`) next to code and message."""

    def body(self) -> Any:
        return {"code": self.code, "message": self.message, **self.data}

    def headers(self) -> dict[str, str]:
        headers = {API_VERSION_HEADER: API_VERSION}
        if "retry_after" in self.data:
            headers["Retry-After"] = str(self.data["retry_after"])
        return headers


class RateLimitedError(AuthError):
    status, code = 429, ErrorCode.OVER_REQUEST_RATE_LIMIT

    def __init__(self, retry_after: int, limit: str = "") -> None:
        # GoTrue's message, plus the limit and the setting that sets it, so an operator knows what to raise.
        super().__init__(f"Request rate limit reached{f': {limit}' if limit else ''}")
        self.retry_after = max(1, int(retry_after))

    def body(self) -> Any:
        return {"code": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        return {API_VERSION_HEADER: API_VERSION, "Retry-After": str(self.retry_after)}


class OAuthError(ApiError):
    """The OAuth-style 400 GoTrue answers on some token-grant paths: `{"error", "error_description"}`."""

    def body(self) -> Any:
        return {"error": self.code, "error_description": self.message}


def bad_json(detail: str) -> AuthError:
    return AuthError(f"Could not parse request body as JSON: {detail}", status=400, code=ErrorCode.BAD_JSON)


def validation_failed(message: str, status: int = 400) -> AuthError:
    return AuthError(message, status=status, code=ErrorCode.VALIDATION_FAILED)


def invalid_credentials() -> AuthError:
    return AuthError("Invalid login credentials", status=400, code=ErrorCode.INVALID_CREDENTIALS)
