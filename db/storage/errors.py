"""Storage's error catalogue: Supabase Storage's codes and legacy `error` strings (supabase/storage
src/internal/errors/codes.ts), raised by db/storage and rendered by api/storage as
`{"statusCode", "code", "error", "message"}` — the four keys storage-js and storage3 read."""
from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    NO_SUCH_KEY = "NoSuchKey"
    NO_SUCH_BUCKET = "NoSuchBucket"
    KEY_ALREADY_EXISTS = "KeyAlreadyExists"
    BUCKET_ALREADY_EXISTS = "BucketAlreadyExists"
    ACCESS_DENIED = "AccessDenied"
    INVALID_JWT = "InvalidJWT"
    ENTITY_TOO_LARGE = "EntityTooLarge"
    INVALID_MIME_TYPE = "InvalidMimeType"
    INVALID_KEY = "InvalidKey"
    INVALID_BUCKET_NAME = "InvalidBucketName"
    INVALID_REQUEST = "InvalidRequest"
    INVALID_PARAMETER = "InvalidParameter"
    INVALID_RANGE = "InvalidRange"
    EXPIRED_TOKEN = "ExpiredToken"
    INVALID_SIGNATURE = "InvalidSignature"
    RESOURCE_NOT_EMPTY = "ResourceNotEmpty"
    NOT_SUPPORTED = "NotSupported"
    INSUFFICIENT_CREDITS = "InsufficientCredits"
    UPLOAD_ABANDONED = "UploadAbandoned"
    DATABASE_UNAVAILABLE = "DatabaseTimeout"
    INTERNAL_ERROR = "InternalError"


# The legacy `error` string upstream sends for a code (storage3 exposes it as `exc.code`); others repeat the code.
LEGACY_ERROR: dict[str, str] = {
    ErrorCode.NO_SUCH_KEY: "not_found",
    ErrorCode.NO_SUCH_BUCKET: "Bucket not found",
    ErrorCode.KEY_ALREADY_EXISTS: "Duplicate",
    ErrorCode.BUCKET_ALREADY_EXISTS: "Duplicate",
    ErrorCode.ACCESS_DENIED: "Unauthorized",
    ErrorCode.ENTITY_TOO_LARGE: "Payload too large",
    ErrorCode.INVALID_MIME_TYPE: "invalid_mime_type",
}


class StorageError(Exception):
    """A refusal in Supabase Storage's terms: HTTP status, code and a message naming the problem."""

    def __init__(self, status: int, code: ErrorCode, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error = error or LEGACY_ERROR.get(code, str(code))

    def body(self) -> dict[str, str]:
        return {"statusCode": str(self.status), "code": str(self.code), "error": self.error, "message": self.message}


def object_not_found() -> StorageError:
    return StorageError(404, ErrorCode.NO_SUCH_KEY, "Object not found")


def bucket_not_found() -> StorageError:
    return StorageError(404, ErrorCode.NO_SUCH_BUCKET, "Bucket not found")


def object_exists() -> StorageError:
    return StorageError(409, ErrorCode.KEY_ALREADY_EXISTS, "The resource already exists")


def access_denied(message: str = "new row violates row-level security policy") -> StorageError:
    return StorageError(403, ErrorCode.ACCESS_DENIED, message)


def too_large(limit: int) -> StorageError:
    return StorageError(413, ErrorCode.ENTITY_TOO_LARGE,
                        f"The object exceeded the maximum allowed size ({limit} bytes)")


def invalid_request(message: str) -> StorageError:
    return StorageError(400, ErrorCode.INVALID_REQUEST, message)
