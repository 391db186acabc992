"""/storage/v1 — Supabase Storage's API for storage-js, storage3 and Flutter's storage client: buckets, objects,
signed URLs and image transformations, authenticated like the data API and decided by RLS on `storage.*`.

Add a route in the module of its resource (buckets.py, objects.py, signed.py, render.py) on `bp`; the SQL goes in
db/storage/objects.py, a multi-step operation in db/storage/store.py. docs/STORAGE.md says what is served and how.
"""
from __future__ import annotations

from flask import Blueprint, Flask, g

from api.services import services

bp = Blueprint("storage", __name__)


def _body_limit() -> int:
    """The limit a 413 names: the object limit on upload routes, MAX_REQUEST_BYTES elsewhere."""
    return g.get("storage_body_limit") or services().settings.max_request_bytes


def init_app(app: Flask) -> None:
    app.register_blueprint(bp, url_prefix="/storage/v1")


# Imported for their routes on `bp` (after `bp` exists); `unsupported` last: its catch-all matches what is left.
from api.storage import buckets, objects, render, signed, unsupported  # noqa: E402,F401
from api.storage.errors import register  # noqa: E402

register(bp, _body_limit)
