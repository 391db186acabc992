"""/realtime/v1/websocket — Supabase Realtime's Phoenix protocol over flask-sock. Filled in by its issue."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the WebSocket route."""
