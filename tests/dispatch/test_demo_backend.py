"""The demo backend: its stand-in model (Pillow thresholding) makes a real PNG mask of the image's bright pixels,
bounds its input and refuses what is not an image; in push mode it verifies each delivery's signature and does
the job through segbase's HTTP surfaces only (the pull mode runs in test_end_to_end.py)."""
from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from api.tokens import api_key
from db.storage.urls import authenticated_object_url
from segbase.demo_backend import STAND_IN, JobFailedError, stand_in_mask
from tests.support.database import make_test_settings
from tests.support.dispatch import SECRET, processes, result, submit
from tests.support.factories import create_user
from tests.support.processes import free_port, wait_for
from tests.support.storage import StorageHttp, unique


def png(width: int, height: int, bright_columns: int) -> bytes:
    image = Image.new("RGB", (width, height), (10, 10, 10))
    for x in range(bright_columns):
        for y in range(height):
            image.putpixel((x, y), (250, 250, 250))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_the_stand_in_masks_the_bright_pixels():
    mask_bytes, labels = stand_in_mask(png(40, 10, 10), "a cat")
    with Image.open(io.BytesIO(mask_bytes)) as mask:
        assert mask.format == "PNG" and mask.size == (40, 10)
        assert mask.getpixel((0, 0)) == 255 and mask.getpixel((39, 9)) == 0
    assert labels == [{"label": "a cat", "score": 0.25, "model": STAND_IN}]
    assert "stand-in" in STAND_IN


def test_the_stand_in_refuses_what_is_not_an_image():
    with pytest.raises(JobFailedError, match="not an image"):
        stand_in_mask(b"<html>not an image</html>", None)


def test_large_images_give_bounded_masks():
    mask_bytes, labels = stand_in_mask(png(3000, 100, 1500), None)
    with Image.open(io.BytesIO(mask_bytes)) as mask:
        assert max(mask.size) <= 2048
    assert labels[0]["label"] == "object"


@pytest.mark.slow
def test_the_demo_backend_in_push_mode_verifies_and_does_the_job(dispatch_settings, dispatch_engine, dispatch_api,
                                                                  db):
    """`segbase demo-backend` with DISPATCH_MODE=push: segbase POSTs the job to it (signed), it reports processing,
    reads the image, uploads the mask and reports done; a forged POST is refused."""
    port = free_port()
    settings = make_test_settings(dispatch_settings.database_url, f"{dispatch_settings.instance_id}q",
                                  api_port=dispatch_settings.api_port, result_url_allow_http=True,
                                  dispatch_mode="push", dispatch_url=f"http://127.0.0.1:{port}/jobs",
                                  dispatch_signing_secret=SECRET, demo_backend_port=port)
    with processes() as running:
        running.worker(dispatch_settings, "demo-webhook-worker", concurrency=1)  # applies what the API stores
        running.worker(settings, "demo-push-worker", concurrency=1)
        running.relay(settings, "relay-q")
        running.start(settings, "demo-backend", ready="demo backend (push) listening")
        forged = httpx.post(f"http://127.0.0.1:{port}/jobs", json={"data": {"job_id": "x"}},
                            headers={"webhook-id": "msg_x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"})
        assert forged.status_code == 401

        user = create_user(dispatch_settings, credits=5)
        with httpx.Client(timeout=60) as http:
            storage = StorageHttp(f"{dispatch_api.url}/storage/v1", api_key(settings, "anon"),
                                  api_key(settings, "service_role"), http)
            name = f"{user.id}/{unique('in')}.png"
            assert storage.upload("images", name, png(32, 32, 8), user.access_token).status_code == 200
        [job_id] = submit(dispatch_engine, user, source=authenticated_object_url(dispatch_settings, "images", name))
        wait_for(lambda: result(db, job_id)["status"] == "done", timeout=120, message="the job to be done")
        row = db.execute("select mask_image_url, labels from public.segmentation_results where id = %s",
                         (job_id,)).fetchone()
        assert row[0].endswith(f"/masks/{user.id}/{job_id}.png") and row[1][0]["score"] == 0.25
