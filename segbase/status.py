"""`segbase status`: what `supabase status -o json` prints, plus pipeline health."""
from __future__ import annotations

from typing import Any

from api.tokens import api_key
from schemas.settings import Settings

HIDDEN = "<hidden: ENV is not dev>"


def collect_status(settings: Settings) -> dict[str, Any]:
    show_secrets = settings.env == "dev"
    status: dict[str, Any] = {
        "api_url": settings.public_url,
        "anon_key": api_key(settings, "anon"),  # public by design, like Supabase's anon key
        "service_role_key": api_key(settings, "service_role") if show_secrets else HIDDEN,
        "webhook_api_key": settings.webhook_api_keys[0] if show_secrets and settings.webhook_api_keys else HIDDEN,
        "db_url": settings.database_url if show_secrets else HIDDEN,
        "redis_url": settings.redis_url if show_secrets else HIDDEN,
    }
    status.update(_pipeline_health(settings))
    return status


def _pipeline_health(settings: Settings) -> dict[str, Any]:
    """Filled in by the operations issue (queue depth, inbox and outbox lag)."""
    return {}
