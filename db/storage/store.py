"""What one storage operation does across PostgreSQL and the blob backend, in the order that keeps them agreeing.

Upload: one transaction before the body is read — the bucket's limits, RLS's answer on whether the caller may write
this object (a rolled-back insert as the caller) and an upload intent naming the new blob's fresh version — then
stream the body into that blob, counting bytes against the limit → commit the blob → insert (or upsert) the object
row as the caller, which claims the intent. A failure at any later step removes the new blob and the intent; a crash
leaves an intent the janitor finds. The row's replaced blob is removed right after the commit. Reads look the row up
as the caller and stream the blob outside any transaction (no connection is held while bytes flow); a blob removed
between the two (a concurrent overwrite) is retried once with the new row.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine

from db.storage import janitor, objects
from db.storage.backends import BlobBackend, BlobMissingError
from db.storage.errors import ErrorCode, StorageError, bucket_not_found, object_not_found, too_large
from db.storage.objects import Bucket, StoredObject
from db.uow import Caller, UnitOfWork, unit_of_work
from schemas.settings import Settings


@dataclass(frozen=True)
class Store:
    engine: Engine
    backend: BlobBackend
    settings: Settings


@dataclass
class UploadBody:
    """An upload's bytes and what the request said about them (the chunks are read lazily, once)."""

    content_type: str
    cache_control: str
    user_metadata: dict[str, Any] | None
    chunks: Iterable[bytes]
    # The same bytes as a source a blob writer can move straight into its file (splice(2)), when the request's
    # body comes from a client socket with a declared length; None otherwise. Read either it or `chunks`.
    socket_source: SocketSource | None = None


class SocketSource(Protocol):
    def splice_into(self, fd: int, on_progress: Callable[[int], None]) -> int:
        """Move the whole body into the file `fd` at its position; `on_progress(total)` after each step."""


@dataclass(frozen=True)
class UploadTarget:
    bucket: Bucket
    name: str
    limit: int
    upsert: bool
    owner: str | None
    # The new blob's name, announced by an intent committed with the checks; None for a check alone.
    version: str | None = None


@dataclass
class BlobStats:
    size: int = 0


def service_bucket(store: Store, bucket_id: str) -> Bucket:
    """The bucket's settings as the service reads them (limits, public flag), whoever the caller is."""
    with unit_of_work(store.engine, Caller.service()) as uow:
        bucket = objects.get_bucket(uow, bucket_id)
    if bucket is None:
        raise bucket_not_found()
    return bucket


def size_limit(store: Store, bucket: Bucket) -> int:
    """STORAGE_MAX_FILE_SIZE, lowered by the bucket's `file_size_limit` (a bucket never raises the global limit)."""
    limit = store.settings.storage_max_file_size
    return min(limit, bucket.file_size_limit) if bucket.file_size_limit else limit


def mime_allowed(mimetype: str, allowed: list[str] | None) -> bool:
    """Supabase's rule: no list allows everything; entries are exact types or `type/*` wildcards."""
    if not allowed:
        return True
    base = mimetype.split(";")[0].strip().lower()
    for pattern in allowed:
        pattern = pattern.strip().lower()
        if pattern == base or pattern in ("*", "*/*") or (pattern.endswith("/*") and base.startswith(pattern[:-1])):
            return True
    return False


def check_upload(store: Store, caller: Caller, *, bucket_id: str, name: str, upsert: bool,
                 owner: str | None) -> UploadTarget:
    """Everything checkable before a body exists: the bucket, its limit, and the caller's right to write."""
    return _checked_target(store, caller, bucket_id=bucket_id, name=name, upsert=upsert, owner=owner, version=None)


def prepare_upload(store: Store, caller: Caller, *, bucket_id: str, name: str, upsert: bool,
                   owner: str | None) -> UploadTarget:
    """check_upload's checks and the intent naming the new blob, in one transaction committed before the body is
    read; store_upload then either claims the intent with the object row or forgets it."""
    return _checked_target(store, caller, bucket_id=bucket_id, name=name, upsert=upsert, owner=owner,
                           version=str(uuid.uuid4()))


def _checked_target(store: Store, caller: Caller, *, bucket_id: str, name: str, upsert: bool, owner: str | None,
                    version: str | None) -> UploadTarget:
    """One transaction: the bucket read as the service (whoever the caller is), the intent for `version` if one is
    given, then RLS asked as `caller` (a refusal rolls the intent back with everything else)."""
    bucket_query: psycopg.Cursor | None = None
    try:
        with unit_of_work(store.engine, Caller.service(), pipelined=True) as uow:  # one round trip after BEGIN
            bucket_query = objects.send_bucket_query(uow, bucket_id)
            if version is not None:
                janitor.record_intent(uow, version=version, bucket_id=bucket_id)
            if caller != uow.caller:
                uow.become(caller)
            objects.upload_precheck(uow, bucket_id=bucket_id, name=name, owner=owner, upsert=upsert)
    except psycopg.Error:
        answered = bucket_query is not None and bucket_query.pgresult is not None
        if answered and objects.read_bucket(bucket_query) is None:  # a missing bucket says so, before RLS
            raise bucket_not_found() from None
        raise
    bucket = objects.read_bucket(bucket_query)
    if bucket is None:  # not reached: the precheck's insert names the bucket, and its foreign key refuses it
        raise bucket_not_found()
    return UploadTarget(bucket=bucket, name=name, limit=size_limit(store, bucket), upsert=upsert, owner=owner,
                        version=version)


def _stream_into_blob(store: Store, version: str, body: UploadBody, limit: int) -> BlobStats:
    stats = BlobStats()
    writer = store.backend.writer(version)
    try:
        splice_from = getattr(writer, "splice_from", None)
        if body.socket_source is not None and splice_from is not None:
            # A declared length, already held to `limit` before the body was read (limit_body); checked again.
            stats.size = splice_from(body.socket_source)
            if stats.size > limit:
                raise too_large(limit)
        else:
            for chunk in body.chunks:
                stats.size += len(chunk)
                if stats.size > limit:
                    raise too_large(limit)
                writer.write(chunk)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return stats


def store_upload(store: Store, caller: Caller, target: UploadTarget, open_body: Callable[[], UploadBody],
                 check_in_transaction: Callable[[UnitOfWork], None] | None = None) -> StoredObject:
    """Stream the body `open_body()` gives into the blob `target` announced (see prepare_upload) and commit the
    object row as `caller`; on any failure, from opening the body on, neither the blob nor the intent remains."""
    version = target.version
    if version is None:
        raise ValueError("store_upload needs a target from prepare_upload (one with an announced version)")
    try:
        body = open_body()
        if not mime_allowed(body.content_type, target.bucket.allowed_mime_types):
            raise StorageError(415, ErrorCode.INVALID_MIME_TYPE,
                               f"mime type {body.content_type.split(';')[0]} is not supported (bucket "
                               f"{target.bucket.id} accepts {', '.join(target.bucket.allowed_mime_types or [])})")
        stats = _stream_into_blob(store, version, body, target.limit)
        now = datetime.now(timezone.utc)
        # The ETag names the blob: it changes with every upload, and costs nothing (an MD5 of the body, as S3 sends
        # for single-part uploads, would cost a third of the upload's CPU, and no client checks it).
        metadata = {"eTag": f'"{version.replace("-", "")}"', "size": stats.size, "mimetype": body.content_type,
                    "cacheControl": body.cache_control, "lastModified": objects.iso(now),
                    "contentLength": stats.size, "httpStatusCode": 200}
        # One round trip after BEGIN (statements and COMMIT pipelined), unless a check must read inside the
        # transaction first; the replaced blob is read from the row locked before the upsert.
        with unit_of_work(store.engine, caller, pipelined=check_in_transaction is None) as uow:
            if check_in_transaction:
                check_in_transaction(uow)
            existing = (objects.send_find_object(uow, target.bucket.id, target.name, for_update=True)
                        if target.upsert else None)
            written = objects.send_write_object(uow, bucket_id=target.bucket.id, name=target.name, version=version,
                                                owner=target.owner, metadata=metadata,
                                                user_metadata=body.user_metadata, upsert=target.upsert)
            uow.on_commit(lambda: janitor.purge_garbage(store.engine, store.backend, _replaced_version(existing)))
    except BaseException:
        janitor.forget_upload(store.engine, store.backend, version)
        raise
    stored = objects.read_object(written)
    assert stored is not None, "an insert … returning gives its row"
    return stored


def _replaced_version(existing: psycopg.Cursor | None) -> list[str]:
    """The blob an upsert replaced (read once its transaction is over)."""
    found = objects.read_object(existing) if existing is not None else None
    return [found.version] if found is not None and found.version else []


def find_visible(store: Store, caller: Caller, bucket_id: str, name: str) -> StoredObject:
    """The object as `caller` sees it under RLS; 404 (NoSuchKey, or NoSuchBucket) otherwise."""
    with unit_of_work(store.engine, caller) as uow:
        found = objects.find_object(uow, bucket_id, name)
    if found is None:
        service_bucket(store, bucket_id)  # a missing bucket says so, as upstream does
        raise object_not_found()
    return found


def open_blob(store: Store, caller: Caller, found: StoredObject,
              choose_range: Callable[[StoredObject], tuple[int, int | None]]
              ) -> tuple[StoredObject, tuple[int, int | None], Iterator[bytes]]:
    """Open `found`'s blob at the range `choose_range` picks; if an overwrite removed it meanwhile, read the row
    again (once) and serve the version that replaced it. Returns (row served, (start, end), chunks)."""
    for attempt in range(2):
        span = choose_range(found)
        try:
            if found.version is None:
                raise BlobMissingError("no version")
            return found, span, store.backend.read(found.version, *span)
        except BlobMissingError:
            if attempt:
                break
            found = find_visible(store, caller, found.bucket_id, found.name)
    raise object_not_found()


def copy_object(store: Store, caller: Caller, *, bucket_id: str, source: str, target_bucket: str, target: str,
                owner: str | None, upsert: bool, user_metadata: dict[str, Any] | None = None,
                copy_metadata: bool = True) -> StoredObject:
    """Copy an object the caller can read to a new name the caller may write; the bytes get a version of their own."""
    found = find_visible(store, caller, bucket_id, source)
    destination = service_bucket(store, target_bucket)
    if not mime_allowed(found.mimetype, destination.allowed_mime_types):
        raise StorageError(415, ErrorCode.INVALID_MIME_TYPE, f"mime type {found.mimetype} is not supported")
    if found.size > size_limit(store, destination):
        raise too_large(size_limit(store, destination))
    version = str(uuid.uuid4())
    janitor.announce_upload(store.engine, version=version, bucket_id=target_bucket)
    replaced: list[str] = []
    try:
        store.backend.copy(found.version or "", version)
        metadata = {**found.metadata, "lastModified": objects.iso(datetime.now(timezone.utc))}
        with unit_of_work(store.engine, caller) as uow:
            objects.mark_copy(uow)
            if upsert:
                existing = objects.find_object(uow, target_bucket, target, for_update=True)
                if existing and existing.version:
                    replaced.append(existing.version)
            stored = objects.write_object(
                uow, bucket_id=target_bucket, name=target, version=version, owner=owner, metadata=metadata,
                user_metadata=found.user_metadata if copy_metadata and user_metadata is None else user_metadata,
                upsert=upsert)
            uow.on_commit(lambda: janitor.purge_garbage(store.engine, store.backend, replaced))
    except BlobMissingError:
        janitor.forget_upload(store.engine, store.backend, version)
        raise object_not_found() from None
    except BaseException:
        janitor.forget_upload(store.engine, store.backend, version)
        raise
    return stored


def delete_objects(store: Store, caller: Caller, bucket_id: str, names: list[str]) -> list[StoredObject]:
    """Delete what the caller may delete; the blobs go right after the commit (the queue keeps any that fail)."""
    with unit_of_work(store.engine, caller) as uow:
        deleted = objects.delete_objects(uow, bucket_id, names)
        versions = [item.version for item in deleted if item.version]
        uow.on_commit(lambda: janitor.purge_garbage(store.engine, store.backend, versions))
    return deleted
