"""The long-lived clients one API process holds, built once from Settings and reached through `services()`.

Each surface's singleton has a typed field here. The ones that start threads or greenlets (the password-hashing
pool, the realtime hub) are created by their surface on first use, in the serving process (after gunicorn
forked and gevent patched); the others are built with the Services.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
import redis
from celery import Celery
from flask import current_app
from sqlalchemy import Engine

from broker.celery_app import create_celery
from db.engine import create_app_engine
from db.rest.cache import CatalogCache
from db.urls import authenticator_libpq_url
from schemas.settings import Settings

if TYPE_CHECKING:  # typing only: these surfaces build their own singletons
    from api.auth.limits import RateLimiter
    from api.auth.passwords import PasswordHasher
    from api.functions.inbox_writer import InboxWriter
    from api.functions.job_signal import JobSignal
    from api.realtime.hub import Hub
    from db.storage.store import Store


@dataclass
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    celery: Celery  # a producer only: the API sends tasks by name (broker.tasks)
    rest_catalog: CatalogCache
    auth_limiter: RateLimiter | None = None
    password_hasher: PasswordHasher | None = None
    realtime: Hub | None = None
    dispatch_signal: JobSignal | None = None
    storage: Store | None = None
    inbox_writer: InboxWriter | None = None  # process-webhook's group commit

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        catalog_url = authenticator_libpq_url(settings)
        return cls(
            settings=settings,
            engine=create_app_engine(settings, application_name="segbase-api"),
            redis=redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5,
                                       health_check_interval=30),
            celery=create_celery(settings),
            rest_catalog=CatalogCache(lambda: psycopg.connect(catalog_url, application_name="segbase-rest-catalog",
                                                              connect_timeout=5), settings.rest_schemas),
        )


def services() -> Services:
    return current_app.extensions["segbase"]
