"""SQLAlchemy 2 engines on psycopg 3: the owner's (migrations only) and the `authenticator` login role's."""
from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from schemas.settings import Settings

AUTHENTICATOR_ROLE = "authenticator"


def sqlalchemy_url(database_url: str) -> str:
    """Accept `postgres://`/`postgresql://` URLs and pin the psycopg 3 driver."""
    url = make_url(database_url.replace("postgres://", "postgresql://", 1))
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def authenticator_url(settings: Settings) -> str:
    """The owner's URL with the login role swapped for `authenticator` (what the API, workers and relay use)."""
    url = make_url(sqlalchemy_url(settings.database_url))
    return url.set(username=AUTHENTICATOR_ROLE,
                   password=settings.db_authenticator_password.get_secret_value()).render_as_string(
        hide_password=False)


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
