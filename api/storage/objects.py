"""Objects: upload/update, download (authenticated and public), info, list, remove, move, copy."""
from __future__ import annotations

from flask import Response, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from api.http import bounds_own_body
from api.storage import bp
from api.storage.bodies import MULTIPART_OVERHEAD_BYTES, is_multipart, upload_body
from api.storage.common import (
    current_caller,
    download_param,
    names,
    owner_of,
    parse_body,
    store,
    upsert_requested,
)
from api.storage.errors import storage_errors
from api.storage.responses import choose_range, object_response, with_safety_headers
from db.storage import objects, store as storage
from db.storage.errors import ErrorCode, StorageError, bucket_not_found, object_not_found, too_large
from db.storage.names import check_bucket_id, check_object_name, folder_prefix, object_name_problem
from db.storage.objects import StoredObject
from db.uow import Caller, unit_of_work
from schemas.storage import MAX_LIST_LIMIT, ListBody, MoveCopyBody, RemoveBody


DRAIN_AFTER_REFUSAL_BYTES = 16 * 1024 * 1024

# --- upload -----------------------------------------------------------------------------------------------------

def limit_body(limit: int) -> None:
    """Bound this request's body by the object limit: refuse a declared Content-Length above it at once, and let
    werkzeug stop a longer (or chunked) body while it streams."""
    allowed = limit + (MULTIPART_OVERHEAD_BYTES if is_multipart(request) else 0)
    g.storage_body_limit = limit
    if request.content_length is not None and request.content_length > allowed:
        raise too_large(limit)
    request.max_content_length = allowed


def drain_refused_body() -> None:
    """Read away (a bounded part of) a body refused mid-stream, so the client, still sending, reads our 413
    instead of a connection reset (closing a socket with unread input makes the kernel send RST)."""
    stream = request.environ.get("wsgi.input")
    remaining = DRAIN_AFTER_REFUSAL_BYTES
    try:
        while stream is not None and remaining > 0 and (chunk := stream.read(min(remaining, 1024 * 1024))):
            remaining -= len(chunk)
    except Exception:  # noqa: BLE001 — the client went away or sent garbage: nothing left to be polite to
        return


def receive_upload(caller: Caller, bucket_id: str, name: str, *, upsert: bool, owner: str | None,
                   check_in_transaction=None) -> StoredObject:
    """The upload steps shared by every upload route (see db/storage/store.py for their order)."""
    target = storage.prepare_upload(store(), caller, bucket_id=bucket_id, name=name, upsert=upsert, owner=owner)

    def open_body():
        limit_body(target.limit)
        return upload_body(request)

    try:
        return storage.store_upload(store(), caller, target, open_body, check_in_transaction)
    except (StorageError, RequestEntityTooLarge) as exc:
        if isinstance(exc, RequestEntityTooLarge) or exc.status == 413:
            drain_refused_body()
        raise


@bp.post("/object/<bucket_id>/<path:name>")
@bounds_own_body
@storage_errors()
def upload_object(bucket_id: str, name: str) -> Response:
    caller = current_caller()
    bucket_id, name = names(bucket_id, name)
    stored = receive_upload(caller, bucket_id, name, upsert=upsert_requested(), owner=owner_of(caller))
    return jsonify({"Id": stored.id, "Key": f"{bucket_id}/{name}"})


@bp.put("/object/<bucket_id>/<path:name>")
@bounds_own_body
@storage_errors()
def update_object(bucket_id: str, name: str) -> Response:
    """`update()`: replace the object's bytes (upstream gives PUT upsert semantics whatever `x-upsert` says)."""
    caller = current_caller()
    bucket_id, name = names(bucket_id, name)
    stored = receive_upload(caller, bucket_id, name, upsert=True, owner=owner_of(caller))
    return jsonify({"Id": stored.id, "Key": f"{bucket_id}/{name}"})


# --- download ---------------------------------------------------------------------------------------------------

def serve(caller: Caller, found: StoredObject) -> Response:
    found, span, chunks = storage.open_blob(store(), caller, found, choose_range(request))
    return object_response(request, found, chunks, span, download=download_param())


@bp.route("/object/<bucket_id>/<path:name>", methods=["GET", "HEAD"])
@bp.route("/object/authenticated/<bucket_id>/<path:name>", methods=["GET", "HEAD"])
@storage_errors()
def download_object(bucket_id: str, name: str) -> Response:
    caller = current_caller()
    bucket_id, name = names(bucket_id, name)
    return serve(caller, storage.find_visible(store(), caller, bucket_id, name))


def public_object(bucket_id: str, name: str) -> StoredObject:
    """An object of a public bucket, read as the service (public URLs carry no credentials)."""
    bucket_id, name = names(bucket_id, name)
    if not storage.service_bucket(store(), bucket_id).public:
        raise bucket_not_found()
    return storage.find_visible(store(), Caller.service(), bucket_id, name)


@bp.route("/object/public/<bucket_id>/<path:name>", methods=["GET", "HEAD"])
@storage_errors()
def download_public_object(bucket_id: str, name: str) -> Response:
    return serve(Caller.service(), public_object(bucket_id, name))


# --- info -------------------------------------------------------------------------------------------------------

def info_response(found: StoredObject) -> Response:
    response = jsonify(found.as_info())
    response.headers["ETag"] = found.etag
    response.headers["Cache-Control"] = "no-cache"
    return with_safety_headers(response)


@bp.get("/object/info/<bucket_id>/<path:name>")
@bp.get("/object/info/authenticated/<bucket_id>/<path:name>")
@storage_errors()
def object_info(bucket_id: str, name: str) -> Response:
    caller = current_caller()
    bucket_id, name = names(bucket_id, name)
    return info_response(storage.find_visible(store(), caller, bucket_id, name))


@bp.get("/object/info/public/<bucket_id>/<path:name>")
@storage_errors()
def public_object_info(bucket_id: str, name: str) -> Response:
    return info_response(public_object(bucket_id, name))


# --- list -------------------------------------------------------------------------------------------------------

@bp.post("/object/list/<bucket_id>")
@storage_errors()
def list_objects(bucket_id: str) -> Response:
    caller = current_caller()
    bucket_id = check_bucket_id(bucket_id)
    body = parse_body(ListBody)
    sort = body.sortBy
    storage.service_bucket(store(), bucket_id)
    with unit_of_work(store().engine, caller) as uow:
        entries = objects.list_folder(
            uow, bucket_id=bucket_id, prefix=folder_prefix(body.prefix), search=body.search or None,
            limit=min(body.limit or 100, MAX_LIST_LIMIT), offset=body.offset or 0,
            sort_column=sort.column if sort else "name", sort_order=(sort.order if sort else "asc").lower())
    return jsonify(entries)


# --- remove, move, copy -----------------------------------------------------------------------------------------

@bp.delete("/object/<bucket_id>")
@storage_errors()
def remove_objects(bucket_id: str) -> Response:
    caller = current_caller()
    bucket_id = check_bucket_id(bucket_id)
    body = parse_body(RemoveBody)
    wanted = [name.lstrip("/") for name in body.names() if isinstance(name, str)]
    valid = [name for name in wanted if object_name_problem(name) is None]  # an invalid name names no object
    deleted = storage.delete_objects(store(), caller, bucket_id, valid) if valid else []
    return jsonify([item.as_row() for item in deleted])


def _source_and_target(body: MoveCopyBody) -> tuple[str, str, str, str]:
    bucket_id = check_bucket_id(body.bucketId)
    target_bucket = check_bucket_id(body.destinationBucket or bucket_id)
    return bucket_id, check_object_name(body.sourceKey), target_bucket, check_object_name(body.destinationKey)


@bp.post("/object/move")
@storage_errors(on_foreign_key=bucket_not_found)
def move_object() -> Response:
    caller = current_caller()
    bucket_id, source, target_bucket, target = _source_and_target(parse_body(MoveCopyBody))
    found = storage.find_visible(store(), caller, bucket_id, source)
    if target_bucket != bucket_id:
        destination = storage.service_bucket(store(), target_bucket)
        if not storage.mime_allowed(found.mimetype, destination.allowed_mime_types):
            raise StorageError(415, ErrorCode.INVALID_MIME_TYPE, f"mime type {found.mimetype} is not supported")
        if found.size > storage.size_limit(store(), destination):
            raise too_large(storage.size_limit(store(), destination))
    with unit_of_work(store().engine, caller) as uow:
        moved = objects.move_object(uow, bucket_id=bucket_id, source=source, target_bucket=target_bucket,
                                    target=target)
    if moved is None:
        raise object_not_found()
    return jsonify({"message": "Successfully moved", "Id": moved.id, "Key": f"{target_bucket}/{target}"})


@bp.post("/object/copy")
@storage_errors(on_foreign_key=bucket_not_found)
def copy_object() -> Response:
    caller = current_caller()
    body = parse_body(MoveCopyBody)
    bucket_id, source, target_bucket, target = _source_and_target(body)
    copied = storage.copy_object(store(), caller, bucket_id=bucket_id, source=source, target_bucket=target_bucket,
                                 target=target, owner=owner_of(caller), upsert=upsert_requested(),
                                 user_metadata=body.metadata, copy_metadata=body.copyMetadata is not False)
    return jsonify({"Id": copied.id, "Key": f"{target_bucket}/{target}", "name": target,
                    "bucket_id": target_bucket, "version": copied.version, "metadata": copied.metadata})
