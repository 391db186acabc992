"""GoTrue's error bodies: `{"code", "message"}` with `X-Supabase-Api-Version: 2024-01-01`, which is what makes the
clients read `code` as the error's string code (when the response echoes `X-Supabase-Api-Version`: supabase/auth `internal/api/errors.go`)."""
from __future__ import annotations

from typing import Any

from api.errors import ApiError

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION = "2024-01-01"


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
    status, code = 429, "over_request_rate_limit"

    def __init__(self, retry_after: int) -> None:
        super().__init__("Request rate limit reached")
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
    return AuthError(f"Could not parse request body as JSON: {detail}", status=400, code="bad_json")


def validation_failed(message: str, status: int = 400) -> AuthError:
    return AuthError(message, status=status, code="validation_failed")


def invalid_credentials() -> AuthError:
    return AuthError("Invalid login credentials", status=400, code="invalid_credentials")
