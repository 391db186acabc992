"""Signed URLs: `createSignedUrl(s)` and the `/object/sign/...` downloads they lead to; `createSignedUploadUrl`
and `uploadToSignedUrl`. Tokens are made and checked by db/storage/signing.py (each kind refuses the others)."""
from __future__ import annotations

from flask import Response, jsonify, request

from api.http import bounds_own_body
from api.storage import bp
from api.storage.common import current_caller, names, owner_of, parse_body, store, upsert_requested
from api.storage.errors import storage_errors
from api.storage.objects import receive_upload, serve
from db.storage import signing
from db.storage import store as storage
from db.storage.errors import ErrorCode, StorageError
from db.storage.names import check_bucket_id, object_name_problem
from db.uow import Caller, UnitOfWork, unit_of_work
from schemas.settings import Settings
from schemas.storage import SignBody, SignManyBody, Transform

NOT_FOUND_OR_DENIED = "Either the object does not exist or you do not have access to it"


def transformations_claim(transform: Transform | None) -> str | None:
    """The transform baked into a signed render URL (upstream's `transformations` claim: "width:200,height:100")."""
    if transform is None or transform.is_empty():
        return None
    values = transform.model_dump(exclude_none=True)
    return ",".join(f"{key}:{value}" for key, value in values.items())


def checked_expiry(settings: Settings, expires_in: int) -> int:
    if expires_in > settings.storage_signed_url_max_expiry_seconds:
        raise StorageError(400, ErrorCode.INVALID_PARAMETER,
                           f"expiresIn must be at most {settings.storage_signed_url_max_expiry_seconds} seconds")
    return expires_in


def signed_path(bucket_id: str, name: str, token: str, transformations: str | None) -> str:
    """Relative, starting with '/', the name not percent-encoded (storage-js runs encodeURI over the whole URL)."""
    route = "/render/image/sign" if transformations else "/object/sign"
    return f"{route}/{bucket_id}/{name}?token={token}"


@bp.post("/object/sign/<bucket_id>/<path:name>")
@storage_errors()
def create_signed_url(bucket_id: str, name: str) -> Response:
    caller = current_caller()
    bucket_id, name = names(bucket_id, name)
    body = parse_body(SignBody)
    settings = store().settings
    expires_in = checked_expiry(settings, body.expiresIn)
    storage.find_visible(store(), caller, bucket_id, name)  # the caller must be able to read it (RLS SELECT)
    transformations = transformations_claim(body.transform)
    token = signing.sign_download(settings, bucket_id, name, expires_in, transformations)
    return jsonify({"signedURL": signed_path(bucket_id, name, token, transformations)})


@bp.post("/object/sign/<bucket_id>")
@storage_errors()
def create_signed_urls(bucket_id: str) -> Response:
    caller = current_caller()
    bucket_id = check_bucket_id(bucket_id)
    body = parse_body(SignManyBody)
    settings = store().settings
    expires_in = checked_expiry(settings, body.expiresIn)
    wanted = [path.lstrip("/") for path in body.paths]
    valid = [path for path in wanted if object_name_problem(path) is None]
    storage.service_bucket(store(), bucket_id)
    with unit_of_work(store().engine, caller) as uow:
        visible = {row.name for row in uow.execute(
            "select name from storage.objects where bucket_id = :bucket and name = any(:names)",
            {"bucket": bucket_id, "names": valid}).all()}
    answer = []
    for original, path in zip(body.paths, wanted):
        if path in visible:
            token = signing.sign_download(settings, bucket_id, path, expires_in)
            answer.append({"error": None, "path": original, "signedURL": signed_path(bucket_id, path, token, None)})
        else:
            answer.append({"error": NOT_FOUND_OR_DENIED, "path": original, "signedURL": None})
    return jsonify(answer)


@bp.route("/object/sign/<bucket_id>/<path:name>", methods=["GET", "HEAD"])
@storage_errors()
def download_signed_object(bucket_id: str, name: str) -> Response:
    """A signed download: the token is the credential (no apikey), checked for this exact object."""
    bucket_id, name = names(bucket_id, name)
    signing.verify(store().settings, request.args.get("token"), "download", bucket_id, name)
    return serve(Caller.service(), storage.find_visible(store(), Caller.service(), bucket_id, name))


@bp.post("/object/upload/sign/<bucket_id>/<path:name>")
@storage_errors()
def create_signed_upload_url(bucket_id: str, name: str) -> Response:
    """Check now, as the caller, that they may write this object (RLS INSERT, and UPDATE with upsert), then sign
    a token that uploads it later as them."""
    caller = current_caller()
    bucket_id, name = names(bucket_id, name)
    upsert = upsert_requested()
    storage.check_upload(store(), caller, bucket_id=bucket_id, name=name, upsert=upsert, owner=owner_of(caller))
    token = signing.sign_upload(store().settings, bucket_id, name, owner=owner_of(caller), upsert=upsert)
    return jsonify({"url": f"/object/upload/sign/{bucket_id}/{name}?token={token}", "token": token})


def result_still_running(result_id: str):
    """A mask upload URL's extra rule: its result must still be pending or processing (checked, with the row
    locked against a concurrent completion, in the transaction that writes the object)."""
    def check(uow: UnitOfWork) -> None:
        status = uow.execute("select status from public.segmentation_results where id = :id for share",
                             {"id": result_id}).scalar()
        if status not in ("pending", "processing"):
            state = "deleted" if status is None else str(status)
            raise StorageError(403, ErrorCode.ACCESS_DENIED,
                               f"This upload URL was made for a job that is {state}; it no longer accepts uploads",
                               error="Unauthorized")
    return check


@bp.put("/object/upload/sign/<bucket_id>/<path:name>")
@bounds_own_body
@storage_errors()
def upload_to_signed_url(bucket_id: str, name: str) -> Response:
    """Upload with a signed upload token: as service_role for the token's owner; upsert comes from the token
    (the request's x-upsert is ignored, as upstream)."""
    bucket_id, name = names(bucket_id, name)
    grant = signing.verify_upload(store().settings, request.args.get("token"), bucket_id, name)
    check = result_still_running(grant.result_id) if grant.result_id else None
    if check is not None:  # refuse before streaming too, not only when the row is written
        with unit_of_work(store().engine, Caller.service()) as uow:
            check(uow)
    stored = receive_upload(Caller.service(), bucket_id, name, upsert=grant.upsert, owner=grant.owner,
                            check_in_transaction=check)
    return jsonify({"Id": stored.id, "Key": f"{bucket_id}/{name}"})

