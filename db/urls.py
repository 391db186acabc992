"""Every form of the database URL in one place: the owner's `DATABASE_URL` (migrations), and the `authenticator`
login the API, workers and relay use, each for SQLAlchemy (psycopg 3 driver) or for libpq (`psycopg.connect`)."""
from __future__ import annotations

import re

from sqlalchemy.engine import make_url

from schemas.settings import Settings

AUTHENTICATOR_ROLE = "authenticator"


def sqlalchemy_url(database_url: str) -> str:
    """Accept `postgres://`/`postgresql://` URLs and pin the psycopg 3 driver."""
    url = make_url(database_url.replace("postgres://", "postgresql://", 1))
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(database_url: str) -> str:
    """The same URL in the form libpq (`psycopg.connect`) reads: no SQLAlchemy driver suffix (the rest of the URL
    is kept byte for byte, so libpq-only query parameters such as `host=/socket/dir` pass through)."""
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", database_url.replace("postgres://", "postgresql://", 1))


def authenticator_url(settings: Settings) -> str:
    """The owner's URL with the login role swapped for `authenticator` (SQLAlchemy form)."""
    url = make_url(sqlalchemy_url(settings.database_url))
    return url.set(username=AUTHENTICATOR_ROLE,
                   password=settings.db_authenticator_password.get_secret_value()).render_as_string(
        hide_password=False)


def authenticator_libpq_url(settings: Settings) -> str:
    """`authenticator_url` in libpq's form, for plain psycopg connections (LISTEN, the catalog loader)."""
    return libpq_url(authenticator_url(settings))
