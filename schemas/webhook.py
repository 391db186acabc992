"""Bodies of the functions: the process-webhook event (the body of the original specification's curl) and the credit-check answer."""
from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_URL_LENGTH = 2048
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

    Validate with `WebhookEvent.model_validate(body, context={"mask_url_hosts": [...]})`; an empty or absent
    host list allows any https host. Unknown keys are ignored (a backend may send more than we store)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task_id: uuid.UUID
    status: WebhookStatus
    mask_url: str | None = Field(None, max_length=MAX_URL_LENGTH, validate_default=True)
    labels: list[dict[str, Any]] | None = Field(None, max_length=MAX_LABELS)
    metadata: dict[str, Any] | None = Field(None, max_length=MAX_METADATA_KEYS)
    error: str | None = Field(None, max_length=MAX_ERROR_LENGTH)

    @field_validator("mask_url")
    @classmethod
    def _https_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("status") == "done":
                raise ValueError("required when status is done")
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https URL")
        allowed = (info.context or {}).get("mask_url_hosts") or []
        if allowed and parts.hostname.lower() not in {host.lower() for host in allowed}:
            raise ValueError(f"host {parts.hostname!r} is not in WEBHOOK_MASK_URL_HOSTS")
        return value

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
