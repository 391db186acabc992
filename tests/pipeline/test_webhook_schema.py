"""The webhook body model on its own (pure logic): the mask host allow-list, the idempotency hash, the stored part."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.webhook import WebhookEvent

TASK = "7b0a4a59-5f83-4d4e-9a39-7a2b4fb7f0a1"


def test_the_mask_host_allow_list_applies_when_set() -> None:
    body = {"task_id": TASK, "status": "done", "mask_url": "https://evil.example/m.png"}
    WebhookEvent.model_validate(body)  # empty list: any https host
    with pytest.raises(ValidationError) as refused:
        WebhookEvent.model_validate(body, context={"mask_url_hosts": ["cdn.example"]})
    assert refused.value.errors()[0]["loc"] == ("mask_url",)
    allowed = WebhookEvent.model_validate({**body, "mask_url": "https://CDN.example/m.png"},
                                          context={"mask_url_hosts": ["cdn.example"]})
    assert allowed.mask_url == "https://CDN.example/m.png"


def test_the_content_hash_ignores_key_order_spacing_and_unknown_keys() -> None:
    one = WebhookEvent.model_validate({"task_id": TASK, "status": "error", "error": "oom", "labels": None})
    two = WebhookEvent.model_validate({"error": "oom", "status": "error", "task_id": TASK.upper(), "extra": 1})
    other = WebhookEvent.model_validate({"task_id": TASK, "status": "error", "error": "timeout"})
    assert one.content_hash() == two.content_hash() != other.content_hash()
    assert one.content_hash().startswith("sha256:")


def test_the_stored_payload_holds_only_what_the_worker_applies() -> None:
    event = WebhookEvent.model_validate({"task_id": TASK, "status": "processing", "metadata": {"step": 2}})
    assert event.inbox_payload() == '{"metadata":{"step":2}}'
