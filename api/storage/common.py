"""What every /storage/v1 view needs: the process's Store, the caller (apikey + bearer, as the data API), JSON
bodies parsed into schemas/storage.py models, and the names in the URL checked."""
from __future__ import annotations

from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from api.http import parse_json
from api.identity import credentials_from_request, resolve_caller
from api.services import services
from db.storage.backends import create_backend
from db.storage.errors import ErrorCode, StorageError, invalid_request
from db.storage.names import check_bucket_id, check_object_name
from db.storage.store import Store
from db.uow import Caller

Model = TypeVar("Model", bound=BaseModel)


def store() -> Store:
    """The process's Store, built on first use (in the serving process, after gunicorn forked)."""
    svc = services()
    if svc.storage is None:
        svc.storage = Store(engine=svc.engine, backend=create_backend(svc.settings), settings=svc.settings)
    return svc.storage


def current_caller() -> Caller:
    """The request's identity; TokenError (→ 401 InvalidJWT) when the apikey or bearer is refused."""
    apikey, bearer = credentials_from_request(request)
    svc = services()
    return resolve_caller(apikey=apikey, bearer=bearer, settings=svc.settings, engine=svc.engine)


def owner_of(caller: Caller) -> str | None:
    """The owner recorded on objects a caller writes: the user's id, none for service_role and anon."""
    return caller.user_id


def parse_body(model: type[Model]) -> Model:
    """A JSON body (a request without a JSON content type, or with an empty body, is `{}`) through the one JSON
    check (api/http.py): not JSON or too deep is 400, a NUL in a string or key 422 naming the field."""
    raw = request.get_data(cache=True) if request.is_json else b""
    body = parse_json(raw, max_depth=services().settings.max_json_depth) if raw.strip() else {}
    if not isinstance(body, dict):
        raise invalid_request("the request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise StorageError(400, ErrorCode.INVALID_PARAMETER, f"{field}: {first['msg']}") from exc


def names(bucket_id: str, name: str) -> tuple[str, str]:
    return check_bucket_id(bucket_id), check_object_name(name)


def upsert_requested() -> bool:
    """`x-upsert` is a string header; only "true" means upsert (storage3 sends "false" on every POST)."""
    return request.headers.get("x-upsert", "").strip().lower() == "true"


def download_param() -> str | None:
    """`?download` → attachment with no name (""), `?download=name` → that name, absent → None."""
    if "download" not in request.args:
        return None
    value = request.args.get("download", "")
    return "" if value.lower() in ("", "true") else value
