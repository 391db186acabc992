"""Storage URLs for other parts of segbase (job dispatch, workers): plain functions over the engine and Settings.

- `authenticated_object_url` / `parse_authenticated_object_url`: the form a result stores to name an object,
  `{API_EXTERNAL_URL}/storage/v1/object/authenticated/<bucket>/<path>` (what storage-js builds).
- `sign_download_url_as_user`: a signed download URL for an object, minted only if that user may read it (checked
  under RLS as the user, as `createSignedUrl` does).
- `sign_mask_upload_url`: a signed upload URL bound to `masks/<user id>/<result id>.<ext>`, which the upload
  route refuses once that result is done or error (so a finished job's mask cannot be replaced through it).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy import Engine

from db.storage import objects, signing
from db.storage.errors import object_not_found
from db.storage.names import check_bucket_id, check_object_name
from db.uow import Caller, unit_of_work
from schemas.settings import Settings

MASKS_BUCKET = "masks"
IMAGES_BUCKET = "images"
AUTHENTICATED_PATH = "/storage/v1/object/authenticated/"


@dataclass(frozen=True)
class SignedUpload:
    url: str  # absolute: PUT the bytes here (no auth header needed)
    token: str
    bucket: str
    path: str


def storage_base(settings: Settings) -> str:
    return f"{settings.public_url}/storage/v1"


def _quoted(name: str) -> str:
    """The path as storage-js's `encodeURI` would send it: segments percent-encoded, '/' kept."""
    return quote(name, safe="/!$&'()*+,;=:@-._~")


def authenticated_object_url(settings: Settings, bucket: str, name: str) -> str:
    return f"{storage_base(settings)}/object/authenticated/{bucket}/{_quoted(name)}"


def parse_authenticated_object_url(settings: Settings, url: str) -> tuple[str, str] | None:
    """(bucket, name) when `url` is exactly this deployment's authenticated object URL form (any scheme), else
    None. No query or fragment; the name must be a valid object name."""
    expected = urlsplit(settings.public_url)
    parts = urlsplit(url)
    if parts.query or parts.fragment or parts.netloc.lower() != expected.netloc.lower():
        return None
    prefix = expected.path.rstrip("/") + AUTHENTICATED_PATH
    if not parts.path.startswith(prefix):
        return None
    bucket, _, name = unquote(parts.path[len(prefix):]).partition("/")
    try:
        return check_bucket_id(bucket), check_object_name(name)
    except Exception:  # noqa: BLE001 — any invalid name means "not an object URL"
        return None


def user_caller(user_id: str) -> Caller:
    """The identity RLS sees for a user when segbase acts on their behalf (claims as in their access token)."""
    user = str(uuid.UUID(str(user_id)))
    return Caller("authenticated", {"sub": user, "role": "authenticated", "aud": "authenticated"})


def sign_download_url_as_user(engine: Engine, settings: Settings, *, user_id: str, bucket: str, name: str,
                              expires_in: int) -> str:
    """An absolute signed download URL for `bucket/name`, if `user_id` may read it; StorageError 404 otherwise."""
    bucket, name = check_bucket_id(bucket), check_object_name(name)
    with unit_of_work(engine, user_caller(user_id)) as uow:
        if objects.find_object(uow, bucket, name) is None:
            raise object_not_found()
    expires = max(1, min(int(expires_in), settings.storage_signed_url_max_expiry_seconds))
    token = signing.sign_download(settings, bucket, name, expires)
    return f"{storage_base(settings)}/object/sign/{bucket}/{_quoted(name)}?token={token}"


def mask_object_name(user_id: str, result_id: str, extension: str = "png") -> str:
    extension = extension.lstrip(".").lower()
    if not extension.isalnum() or len(extension) > 10:
        raise ValueError(f"invalid mask extension {extension!r}")
    return f"{uuid.UUID(str(user_id))}/{uuid.UUID(str(result_id))}.{extension}"


def sign_mask_upload_url(settings: Settings, *, user_id: str, result_id: str, extension: str = "png",
                         expires_in: int | None = None) -> SignedUpload:
    """A signed upload URL for `masks/<user id>/<result id>.<ext>`, upserting, as service_role (no owner, no usage
    row), refused by the upload route once the result is done or error."""
    name = mask_object_name(user_id, result_id, extension)
    token = signing.sign_upload(settings, MASKS_BUCKET, name, owner=None, upsert=True, expires_in=expires_in,
                                result_id=str(uuid.UUID(str(result_id))))
    url = f"{storage_base(settings)}/object/upload/sign/{MASKS_BUCKET}/{_quoted(name)}?token={token}"
    return SignedUpload(url=url, token=token, bucket=MASKS_BUCKET, path=name)
