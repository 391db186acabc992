"""A result may name an object in segbase's storage by its authenticated object URL (any scheme), besides https
URLs: the database rule (every writer) and the webhook's check in Python agree on each vector."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from db.storage.urls import authenticated_object_url
from schemas.urls import ResultUrlPolicy, UrlRefused
from schemas.webhook import WebhookEvent, validation_context


def vectors(settings) -> list[tuple[str, bool]]:
    own = authenticated_object_url(settings, "images", f"{uuid.uuid4()}/cat photo.png")
    base = f"{settings.public_url}/storage/v1/object"
    host = settings.public_url.split("://", 1)[1]
    return [
        (own, True),
        (own.replace("http://", "https://", 1), True),
        (f"{base}/authenticated/masks/{uuid.uuid4()}/{uuid.uuid4()}.png", True),
        (f"{base}/authenticated/images/a/b/c.png", True),
        (f"{base}/public/images/a.png", settings.result_url_allow_http),  # only as an ordinary URL
        (f"{base}/authenticated/images/a.png?download=1", settings.result_url_allow_http),
        (f"{base}/authenticated/images/../secrets/a.png", False),
        (f"{base}/authenticated/images//a.png", False),
        (f"{base}/authenticated/images/", False),
        (f"{base}/authenticated/images", False),
        (f"ftp://{host}/storage/v1/object/authenticated/images/a.png", False),
        ("http://other.example/storage/v1/object/authenticated/images/a.png", False),
        (f"{base}/authenticated/images/a b.png", False),
        (f"{base}/authenticated/images/a\\b.png", False),
        ("https://cdn.example/mask.png", True),
    ]


def database_accepts(owner_conn, url: str) -> bool:
    return owner_conn.execute("select internal.is_allowed_result_url(%s)", (url,)).fetchone()[0]


def test_database_and_webhook_agree_on_storage_object_urls(settings, owner_conn) -> None:
    # what `segbase migrate` writes for these settings (another test may have migrated with other ones)
    owner_conn.execute("update internal.config set value = to_jsonb(%s::text) where key = 'storage_object_url_prefix'",
                       (settings.storage_object_url_prefix,))
    policy = ResultUrlPolicy.build(allow_http=settings.result_url_allow_http,
                                   max_length=settings.result_url_max_length,
                                   storage_prefix=settings.storage_object_url_prefix)
    for url, expected in vectors(settings):
        assert database_accepts(owner_conn, url) is expected, url
        try:
            policy.check(url)
            python = True
        except UrlRefused:
            python = False
        assert python is expected, url


def test_a_result_may_point_at_its_own_uploaded_image(settings, owner_conn, raw, alice, png) -> None:
    owner_conn.execute("update internal.config set value = to_jsonb(%s::text) where key = 'storage_object_url_prefix'",
                       (settings.storage_object_url_prefix,))
    name = f"{alice.id}/source.png"
    assert raw.upload("images", name, png, alice.access_token, upsert=True).status_code == 200
    url = authenticated_object_url(settings, "images", name)
    owner_conn.execute("insert into public.segmentation_results (user_id, source_image_url) values (%s, %s)",
                       (alice.id, url))
    with pytest.raises(psycopg.errors.CheckViolation):
        owner_conn.execute("insert into public.segmentation_results (user_id, source_image_url) values (%s, %s)",
                           (alice.id, url.replace("/authenticated/", "/authenticated/../")))
    event = WebhookEvent.model_validate({"task_id": str(uuid.uuid4()), "status": "done",
                                         "mask_url": authenticated_object_url(settings, "masks", f"{alice.id}/x.png")},
                                        context=validation_context(settings))
    assert event.mask_url.startswith(settings.public_url)
