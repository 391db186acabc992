"""GoTrue's request bodies for /auth/v1, and the one parser every endpoint uses.

Clients send fields segbase does not use (`gotrue_meta_security`, `code_challenge`…) and explicit nulls
(supabase-py and supabase-flutter keep them): unknown keys are ignored and null means absent, as GoTrue does.
"""
from __future__ import annotations

from typing import Any

from flask import request
from pydantic import BaseModel, ConfigDict, ValidationError

from api.auth.errors import bad_json, validation_failed
from api.http import JsonInputError, parse_json
from api.services import services


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SignUpBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    data: dict[str, Any] | None = None


class PasswordGrantBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None


class RefreshGrantBody(_Body):
    refresh_token: str | None = None


class UpdateUserBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    data: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None


def parse_body(model: type[_Body]) -> Any:
    """The request's JSON body validated by `model`; GoTrue's 400s (`bad_json`, `validation_failed`) otherwise.

    The body goes through the one JSON check (api/http.py): too deep or not JSON is GoTrue's 400 `bad_json`
    naming the problem; a NUL or a lone surrogate in a string or key is 422 `validation_failed` naming the field."""
    raw = request.get_data(cache=True)  # beyond MAX_REQUEST_BYTES this raises 413
    if not raw.strip():
        payload: Any = {}
    else:
        try:
            payload = parse_json(raw, max_depth=services().settings.max_json_depth)
        except JsonInputError as exc:
            if exc.status == 422:
                raise validation_failed(exc.message, status=422) from exc
            raise bad_json(exc.message) from exc
    if not isinstance(payload, dict):
        raise bad_json("expected a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise validation_failed(f"{field}: {first['msg']}") from exc
