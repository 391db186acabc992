"""/console: the operator console (server-rendered pages on segbase's own durable tables). Add a page by writing a
view in api/console/views.py, its template in api/console/templates/console/, and its SQL in db/console.py.

`init_app` mounts it at /console when CONSOLE_ENABLED. With CONSOLE_EXTERNAL_URL set, the console answers only on
that origin's host, and that host serves nothing but the console: user content (storage objects, functions) never
shares an origin with the operator's session cookie.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request

from api.console.views import bp
from api.errors import NotFoundError
from schemas.settings import Settings

CONSOLE_PREFIX = "/console"


def init_app(app: Flask, settings: Settings) -> None:
    if not settings.console_enabled:
        return
    app.register_blueprint(bp, url_prefix=CONSOLE_PREFIX)
    if not settings.console_external_url:
        return
    console_host = urlsplit(settings.console_external_url).netloc.lower()

    @app.before_request
    def _console_on_its_own_origin() -> None:
        on_console_host = request.host.lower() == console_host
        in_console = request.path == CONSOLE_PREFIX or request.path.startswith(CONSOLE_PREFIX + "/")
        if in_console != on_console_host:
            raise NotFoundError(f"{request.path} is not served on this host")
