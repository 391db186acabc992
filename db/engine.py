"""SQLAlchemy 2 engines on psycopg 3: the owner's (migrations only) and the `authenticator` login role's, and one
cache of them per process for code that runs in forked workers (Celery's prefork pool)."""
from __future__ import annotations

import os
import threading

from sqlalchemy import Engine, create_engine

from db.urls import authenticator_url, sqlalchemy_url
from schemas.settings import Settings


def create_app_engine(settings: Settings, *, pool_size: int | None = None, application_name: str = "segbase") -> Engine:
    """An engine logged in as `authenticator`; every unit of work then `SET LOCAL ROLE`s to its caller."""
    size = pool_size or settings.db_pool_size
    return create_engine(
        authenticator_url(settings),
        pool_size=size,
        max_overflow=0,
        # No pre-ping: it is a round trip per checkout. db/uow.py opens each transaction with a query that
        # writes nothing and retries it once on a connection the server had closed.
        pool_recycle=1800,
        connect_args={
            "application_name": application_name,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )


def create_owner_engine(settings: Settings) -> Engine:
    """An engine as the database owner: for the migration runner and test set-up only, never for requests."""
    return create_engine(sqlalchemy_url(settings.database_url), pool_size=1, max_overflow=1,
                         connect_args={"application_name": "segbase-migrate"})


_process_engines: dict[tuple[int, str, str], Engine] = {}
_process_engines_lock = threading.Lock()


def process_engine(settings: Settings, *, application_name: str, pool_size: int = 1) -> Engine:
    """This process's `authenticator` engine for `application_name`, created on first use after a fork (an engine
    inherited from the parent would share its sockets), then reused for every task the process runs."""
    key = (os.getpid(), settings.database_url, application_name)
    with _process_engines_lock:
        engine = _process_engines.get(key)
        if engine is None:
            engine = _process_engines[key] = create_app_engine(settings, pool_size=pool_size,
                                                               application_name=application_name)
        return engine
