"""The demo backend's stand-in model (Pillow thresholding): a real PNG mask of the image's bright pixels, bounded
input, and a clear refusal of what is not an image."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from segbase.demo_backend import STAND_IN, JobFailedError, stand_in_mask


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
