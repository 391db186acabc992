"""Buckets: list, get, create, update, empty, delete — as the caller, so RLS on `storage.buckets` decides (no policy
exists by default: service_role manages buckets, as on Supabase)."""
from __future__ import annotations

from flask import Response, jsonify, request

from api.storage import bp
from api.storage.common import current_caller, owner_of, parse_body, store
from api.storage.errors import storage_errors
from db.storage import objects
from db.storage.errors import ErrorCode, StorageError, bucket_not_found, invalid_request
from db.storage.names import check_bucket_id
from db.uow import unit_of_work
from schemas.storage import BucketBody



def bucket_exists() -> StorageError:
    return StorageError(409, ErrorCode.BUCKET_ALREADY_EXISTS, "The resource already exists")


def bucket_not_empty() -> StorageError:
    return StorageError(409, ErrorCode.RESOURCE_NOT_EMPTY, "The bucket you tried to delete is not empty")


def _int_arg(name: str, default: int | None, low: int = 0) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < low:
        raise StorageError(400, ErrorCode.INVALID_PARAMETER, f"{name} must be an integer ≥ {low}")
    return int(raw)


@bp.get("/bucket")
@bp.get("/bucket/")
@storage_errors()
def list_buckets() -> Response:
    caller = current_caller()
    sort_column = request.args.get("sortColumn", "name")
    sort_order = request.args.get("sortOrder", "asc").lower()
    if sort_column not in objects.BUCKET_SORT_COLUMNS or sort_order not in ("asc", "desc"):
        raise StorageError(400, ErrorCode.INVALID_PARAMETER, "sortColumn must be id|name|created_at|updated_at "
                                                             "and sortOrder asc|desc")
    with unit_of_work(store().engine, caller) as uow:
        buckets = objects.list_buckets(uow, limit=_int_arg("limit", None, 1), offset=_int_arg("offset", 0) or 0,
                                       search=request.args.get("search") or None, sort_column=sort_column,
                                       sort_order=sort_order)
    return jsonify([bucket.as_json() for bucket in buckets])


@bp.get("/bucket/<bucket_id>")
@storage_errors()
def get_bucket(bucket_id: str) -> Response:
    caller = current_caller()
    with unit_of_work(store().engine, caller) as uow:
        bucket = objects.get_bucket(uow, check_bucket_id(bucket_id))
    if bucket is None:
        raise bucket_not_found()
    return jsonify(bucket.as_json())


@bp.post("/bucket")
@bp.post("/bucket/")
@storage_errors(on_duplicate=bucket_exists)
def create_bucket() -> Response:
    caller = current_caller()
    body = parse_body(BucketBody)
    bucket_id = check_bucket_id(body.id or body.name or "")
    with unit_of_work(store().engine, caller) as uow:
        objects.create_bucket(uow, bucket_id=bucket_id, name=body.name or bucket_id, public=bool(body.public),
                              file_size_limit=body.file_size_limit, allowed_mime_types=body.allowed_mime_types,
                              owner=owner_of(caller))
    return jsonify({"name": bucket_id})


@bp.put("/bucket/<bucket_id>")
@storage_errors()
def update_bucket(bucket_id: str) -> Response:
    caller = current_caller()
    body = parse_body(BucketBody)
    sent = body.model_fields_set
    changes = {key: getattr(body, key) for key in ("public", "file_size_limit", "allowed_mime_types") if key in sent}
    if "public" in changes and changes["public"] is None:
        raise invalid_request("public must be true or false")
    with unit_of_work(store().engine, caller) as uow:
        if not objects.update_bucket(uow, check_bucket_id(bucket_id), changes):
            raise bucket_not_found()
    return jsonify({"message": "Successfully updated"})


@bp.post("/bucket/<bucket_id>/empty")
@storage_errors()
def empty_bucket(bucket_id: str) -> Response:
    caller = current_caller()
    bucket_id = check_bucket_id(bucket_id)
    with unit_of_work(store().engine, caller) as uow:
        if objects.get_bucket(uow, bucket_id) is None:
            raise bucket_not_found()
        objects.empty_bucket(uow, bucket_id)
    # The bytes follow through the janitor's queue (the rows are already gone, the bucket reads empty).
    return jsonify({"message": "Successfully emptied"})


@bp.delete("/bucket/<bucket_id>")
@storage_errors(on_foreign_key=bucket_not_empty)
def delete_bucket(bucket_id: str) -> Response:
    caller = current_caller()
    bucket_id = check_bucket_id(bucket_id)
    with unit_of_work(store().engine, caller) as uow:
        if objects.get_bucket(uow, bucket_id) is None:
            raise bucket_not_found()
        if objects.bucket_has_objects(uow, bucket_id):
            raise bucket_not_empty()
        if not objects.delete_bucket(uow, bucket_id):
            raise bucket_not_found()
    return jsonify({"message": "Successfully deleted"})
