"""/functions/v1 — the original specification's edge functions as Flask views, one module per function.

Add a function by writing `api/functions/<name>.py` with routes on `bp` and importing it below.
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("functions", __name__)

# Imported for their routes on `bp` (after `bp` exists).
from api.functions import (  # noqa: E402,F401
    claim_jobs,
    cleanup_old_results,
    credit_check,
    extend_lease,
    process_webhook,
    release_jobs,
)
