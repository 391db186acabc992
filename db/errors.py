"""Which database failures a retry can cure: one table for the API (503 + Retry-After), the Celery workers (retry
with backoff) and the relay (reconnect). Everything else is the statement's own fault and is never retried.
"""
from __future__ import annotations

import psycopg
from sqlalchemy import exc as sa_exc

# SQLSTATEs (PostgreSQL, Appendix A) of failures caused by the database's state at that moment, not by the
# statement: class 08 connection exception; 40001 serialization_failure and 40P01 deadlock_detected;
# 55P03 lock_not_available; 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
UNAVAILABLE_SQLSTATES = ("08", "40001", "40P01", "55P03", "57P01", "57P02", "57P03")
# 57014 query_canceled (statement_timeout): a worker retries it, because the load that slowed its statement
# passes; the data API answers 504 as PostgREST does, because there the client's own query took too long.
STATEMENT_TIMEOUT = "57014"
# Raised before a statement reached the server, or when the connection broke under it.
CONNECTION_ERRORS = (sa_exc.OperationalError, sa_exc.TimeoutError, sa_exc.DisconnectionError,
                     psycopg.OperationalError)


def sqlstate_of(exc: BaseException) -> str:
    """The SQLSTATE of a psycopg error, also when SQLAlchemy wrapped it; "" when there is none."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return getattr(orig, "sqlstate", None) or ""


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not serve the statement now (lost connection, shutdown, lock, conflict)."""
    return isinstance(exc, CONNECTION_ERRORS) or sqlstate_of(exc).startswith(UNAVAILABLE_SQLSTATES)


def is_transient(exc: BaseException) -> bool:
    """True for failures a background retry can cure: `is_unavailable`, plus a statement timeout."""
    return is_unavailable(exc) or sqlstate_of(exc) == STATEMENT_TIMEOUT
