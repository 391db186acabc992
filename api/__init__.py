"""The Flask API: app factory and one blueprint per surface (health, auth, rest, functions, realtime, storage,
console). Add a surface as `api/<surface>/` and register it in `create_app`."""
from __future__ import annotations

from flask import Flask

from api import auth, console, functions, health, realtime, rest, storage
from api.errors import register_error_handlers
from api.http import init_http
from api.services import Services
from schemas.settings import Settings


def create_app(settings: Settings | None = None, *, services=None) -> Flask:
    """Build the WSGI app from one Settings object; nothing connects or configures logging at import time."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["segbase"] = services or Services.from_settings(settings)

    register_error_handlers(app)
    init_http(app, settings)
    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp, url_prefix="/auth/v1")
    app.register_blueprint(rest.bp, url_prefix="/rest/v1")
    app.register_blueprint(functions.bp, url_prefix="/functions/v1")
    realtime.init_app(app)
    storage.init_app(app)
    console.init_app(app, settings)
    return app
