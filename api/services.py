"""The long-lived clients one API process holds, built once from Settings and reached through `services()`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from flask import current_app
from sqlalchemy import Engine

from db.engine import create_app_engine
from schemas.settings import Settings


@dataclass
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    extras: dict[str, Any] = field(default_factory=dict)  # per-surface singletons (catalog cache, hash pool…)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            engine=create_app_engine(settings, application_name="segbase-api"),
            redis=redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5,
                                       health_check_interval=30),
        )


def services() -> Services:
    return current_app.extensions["segbase"]
