"""Bodies of the functions: the process-webhook event (the body of the original specification's curl) and the credit-check answer."""
from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.settings import Settings
from schemas.urls import ResultUrlPolicy

MAX_LABELS = 1000
MAX_LABELS_JSON_BYTES = 256 * 1024
MAX_METADATA_KEYS = 100
MAX_METADATA_JSON_BYTES = 64 * 1024
MAX_ERROR_LENGTH = 4000

WebhookStatus = Literal["processing", "done", "error"]


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


class WebhookEvent(BaseModel):
    """What the inference backend posts when a job moves on. `task_id` is the segmentation_results.id.

    Validate with `WebhookEvent.model_validate(body, context=validation_context(settings))`: `mask_url` follows
    the result URL rule (schemas/urls.py) with the WEBHOOK_MASK_URL_HOSTS allow-list (empty or absent: any host).
    Unknown keys are ignored (a backend may send more than we store)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task_id: uuid.UUID
    status: WebhookStatus
    mask_url: str | None = Field(None, validate_default=True)
    labels: list[dict[str, Any]] | None = Field(None, max_length=MAX_LABELS)
    metadata: dict[str, Any] | None = Field(None, max_length=MAX_METADATA_KEYS)
    error: str | None = Field(None, max_length=MAX_ERROR_LENGTH)

    @field_validator("mask_url")
    @classmethod
    def _allowed_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("status") == "done":
                raise ValueError("required when status is done")
            return None
        context = info.context or {}
        policy = ResultUrlPolicy.build(allow_http=context.get("allow_http", False),
                                       max_length=context.get("max_url_length", 2048),
                                       allowed_hosts=tuple(context.get("mask_url_hosts") or ()),
                                       storage_prefix=context.get("storage_prefix", ""))
        return policy.check(value)

    @field_validator("labels")
    @classmethod
    def _bounded_labels(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value is not None and _json_size(value) > MAX_LABELS_JSON_BYTES:
            raise ValueError(f"must be at most {MAX_LABELS_JSON_BYTES} bytes of JSON")
        return value

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and _json_size(value) > MAX_METADATA_JSON_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_JSON_BYTES} bytes of JSON")
        return value

    def inbox_payload(self) -> str:
        """The stored part of the event (what the worker applies), as compact JSON without absent fields."""
        return self.model_dump_json(include={"mask_url", "labels", "metadata", "error"}, exclude_none=True)

    def content_hash(self) -> str:
        """The idempotency key of an event sent without a `webhook-id`: a hash of its canonical JSON."""
        canonical = json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True,
                               separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def validation_context(settings: Settings) -> dict[str, Any]:
    """What WebhookEvent's validators read from the settings."""
    return {"mask_url_hosts": settings.webhook_mask_url_hosts, "allow_http": settings.result_url_allow_http,
            "max_url_length": settings.result_url_max_length,
            "storage_prefix": settings.storage_object_url_prefix}


class WebhookAccepted(BaseModel):
    event_id: str
    status: Literal["queued"] = "queued"


class WebhookDuplicate(BaseModel):
    event_id: str
    duplicate: Literal[True] = True


class CreditCheck(BaseModel):
    """The credit-check answer: the balance, what in-flight jobs reserve, and whether one more job fits."""

    credits: int
    reserved: int
    available: int
    tier: str
    cost_per_segmentation: int
    can_submit: bool
