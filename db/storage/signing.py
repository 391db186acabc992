"""The two tokens storage signs: a signed download URL's and a signed upload URL's (Supabase Storage's claims:
`url` = `<bucket>/<name>`, `scope`, and for uploads `owner` and `upsert`; supabase/storage src/storage/object.ts).

Each kind carries its own type twice — the JWT header's `typ` and the `scope` claim — and is signed with a key of
its own, derived from JWT_SECRET, that no access token or API key is signed with. So a verifier accepts only its
own kind: a download token is no upload token, neither is an access token, and an access token (or API key) is
refused as either (its signature does not match the URL-signing key).
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from schemas.settings import Settings

Kind = Literal["download", "upload"]
TOKEN_TYPES: dict[str, str] = {"download": "storage-download+jwt", "upload": "storage-upload+jwt"}
LEEWAY_SECONDS = 5


class SignedUrlError(Exception):
    """A signed URL's token was refused: `expired` or `invalid` (tampered, another kind, another object)."""

    def __init__(self, reason: Literal["expired", "invalid"], message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def url_signing_key(settings: Settings) -> bytes:
    """A key of its own for URL tokens, so no access token or API key can pass for one and vice versa."""
    return hmac.new(settings.jwt_secret.get_secret_value().encode(), b"segbase storage url signing v1",
                    hashlib.sha256).digest()


@dataclass(frozen=True)
class UploadGrant:
    """What a verified signed upload token allows: one object, as `owner`, overwriting or not."""

    bucket: str
    name: str
    owner: str | None
    upsert: bool
    result_id: str | None  # set for a mask upload URL: refused once that result is finished


def sign(settings: Settings, kind: Kind, bucket: str, name: str, expires_in: int, **claims: Any) -> str:
    issued = int(time.time())
    payload = {"url": f"{bucket}/{name}", "scope": kind, "iat": issued, "exp": issued + int(expires_in), **claims}
    return jwt.encode(payload, url_signing_key(settings), algorithm="HS256", headers={"typ": TOKEN_TYPES[kind]})


def sign_download(settings: Settings, bucket: str, name: str, expires_in: int,
                  transformations: str | None = None) -> str:
    """A token for `GET /object/sign/<bucket>/<name>?token=` (and `/render/image/sign/...` with transformations)."""
    extra = {"transformations": transformations} if transformations else {}
    return sign(settings, "download", bucket, name, expires_in, **extra)


def sign_upload(settings: Settings, bucket: str, name: str, *, owner: str | None, upsert: bool,
                expires_in: int | None = None, result_id: str | None = None) -> str:
    """A token for `PUT /object/upload/sign/<bucket>/<name>?token=`: uploads as `owner` (None: service_role)."""
    extra = {"result_id": result_id} if result_id else {}
    return sign(settings, "upload", bucket, name, expires_in or settings.storage_signed_upload_expiry_seconds,
                owner=owner, upsert=bool(upsert), **extra)


def verify(settings: Settings, token: str | None, kind: Kind, bucket: str, name: str) -> dict[str, Any]:
    """The claims of a `kind` token made for exactly `<bucket>/<name>`; SignedUrlError otherwise."""
    if not token:
        raise SignedUrlError("invalid", "Missing token")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, url_signing_key(settings), algorithms=["HS256"], leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "url", "scope"]})
    except jwt.ExpiredSignatureError as exc:
        raise SignedUrlError("expired", "The provided token has expired.") from exc
    except jwt.InvalidTokenError as exc:
        raise SignedUrlError("invalid", "Invalid signature") from exc
    if header.get("typ") != TOKEN_TYPES[kind] or claims.get("scope") != kind:
        raise SignedUrlError("invalid", f"Invalid signature: not a signed {kind} token")
    if claims.get("url") != f"{bucket}/{name}":
        raise SignedUrlError("invalid", "Invalid signature: the token was signed for another object")
    return claims


def verify_upload(settings: Settings, token: str | None, bucket: str, name: str) -> UploadGrant:
    claims = verify(settings, token, "upload", bucket, name)
    owner = claims.get("owner")
    return UploadGrant(bucket=bucket, name=name, owner=str(owner) if owner else None,
                       upsert=bool(claims.get("upsert")), result_id=claims.get("result_id"))
