"""Redis pub/sub channel names shared by publishers (the relay) and subscribers (each API process)."""
from __future__ import annotations

from schemas.settings import Settings


def changes_channel(settings: Settings) -> str:
    """The one channel the relay publishes realtime messages on and every API process subscribes to
    (namespaced by INSTANCE_ID: pub/sub ignores Redis database numbers)."""
    return settings.redis_key("realtime", "changes")
