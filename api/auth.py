"""/auth/v1 — filled in by its issue."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("auth", __name__)
