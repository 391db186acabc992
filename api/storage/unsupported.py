"""What segbase's storage does not serve, answered in storage's error shape rather than an HTML 404: resumable
(TUS) uploads, and any other path under /storage/v1."""
from __future__ import annotations

from flask import Response, request

from api.storage import bp
from db.storage.errors import ErrorCode, StorageError

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@bp.route("/upload/resumable", methods=ALL_METHODS)
@bp.route("/upload/resumable/<path:rest>", methods=ALL_METHODS)
def resumable_upload(rest: str = "") -> Response:
    raise StorageError(501, ErrorCode.NOT_SUPPORTED,
                       "Resumable (TUS) uploads are not supported by segbase: upload with one request, "
                       "POST /storage/v1/object/<bucket>/<path> (objects up to STORAGE_MAX_FILE_SIZE)")


@bp.route("/<path:rest>", methods=ALL_METHODS)
def unknown_route(rest: str) -> Response:
    raise StorageError(404, ErrorCode.NOT_SUPPORTED, f"Route {request.method}:/storage/v1/{rest} not found",
                       error="Not Found")
