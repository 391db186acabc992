"""The unit of work: one transaction, the caller's identity set first, side effects only after commit.

The identity is set exactly as PostgREST does on Supabase: `set_config('role', <role>, true)` (which is
`SET LOCAL ROLE`) and `set_config('request.jwt.claims', <json>, true)`, so `auth.uid()`, RLS policies,
grants and triggers decide — never `if` statements in Python.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)
NO_PARAMETERS = {"no_parameters": True}

Role = Literal["anon", "authenticated", "service_role"]
# `supabase_auth_admin` is internal: only db/auth.py's AUTH_ADMIN uses it; no JWT ever maps to it (api/identity.py).
DATABASE_ROLES: frozenset[str] = frozenset({"anon", "authenticated", "service_role", "supabase_auth_admin"})


@dataclass(frozen=True)
class Caller:
    """Who a unit of work runs as: a database role and the JWT claims `auth.*()` read."""

    role: Role
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def user_id(self) -> str | None:
        return self.claims.get("sub") if self.role == "authenticated" else None

    @classmethod
    def service(cls) -> Caller:
        """The identity of workers, beat and relay: `service_role`, never the owner or a superuser."""
        return cls("service_role", {"role": "service_role"})

    @classmethod
    def anonymous(cls) -> Caller:
        return cls("anon", {"role": "anon"})


class UnitOfWork:
    """An open transaction plus the callbacks to run once it has committed."""

    def __init__(self, connection: Connection, caller: Caller) -> None:
        self.connection = connection
        self.caller = caller
        self._after_commit: list[Callable[[], None]] = []

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after a successful commit (Celery enqueue, Redis publish); dropped on rollback."""
        self._after_commit.append(callback)

    def become(self, caller: Caller) -> None:
        """Act as `caller` for the rest of this transaction (e.g. a sign-in that then writes a service_role audit
        row, so both commit together)."""
        if caller.role not in DATABASE_ROLES:
            raise ValueError(f"unknown database role {caller.role!r}")
        # Through the driver's cursor, so it can go in a pipelined unit of work.
        self.driver_cursor().execute(
            "select set_config('role', %(role)s, true), set_config('request.jwt.claims', %(claims)s, true)",
            {"role": caller.role, "claims": json.dumps(caller.claims, separators=(",", ":"))})
        self.caller = caller

    def execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        if isinstance(statement, str):
            statement = text(statement)
        return self.connection.execute(statement, params or {})

    def driver_cursor(self, **options: Any) -> psycopg.Cursor:
        """A cursor in this transaction for statements composed with `psycopg.sql` (positional parameters):
        the data API's builder (db/rest/) composes those, and runs them through db/rest/execute.py. `options` go to
        psycopg's `cursor()` (e.g. `row_factory`)."""
        return self.connection.connection.driver_connection.cursor(**options)


def _begin_statement(driver: psycopg.Connection, caller: Caller) -> str:
    """`BEGIN` and the identity as one simple-protocol query, so opening a unit of work costs one round trip.

    The simple query protocol (the only one that carries two statements) takes no bound parameters, so the role
    and the claims are quoted by psycopg's `sql.Literal` with the connection's encoding; the role must also be
    one of DATABASE_ROLES."""
    if caller.role not in DATABASE_ROLES:
        raise ValueError(f"unknown database role {caller.role!r}")
    return sql.SQL("begin; select set_config('role', {}, true), set_config('request.jwt.claims', {}, true)").format(
        sql.Literal(caller.role), sql.Literal(json.dumps(caller.claims, separators=(",", ":")))).as_string(driver)


def _driver(connection: Connection) -> psycopg.Connection:
    return connection.connection.driver_connection  # type: ignore[return-value]


def _begin(engine: Engine, caller: Caller) -> Connection:
    """Check out a pooled connection and open the transaction as `caller` (one round trip).

    The pool does not ping on checkout (that would be a round trip per unit of work). A pooled connection the
    server has closed (restart, idle timeout) fails here instead, on a query that writes nothing, so this is the
    one place a retry is always safe: the broken connection is invalidated (SQLAlchemy then recycles every
    connection older than the failure) and the transaction is opened once more on a fresh one. A failed connect
    is not retried: the database is down and the caller answers 503."""
    for attempt in range(2):
        connection = engine.connect()
        driver = _driver(connection)
        try:
            # psycopg would send its own BEGIN, in a round trip of its own, before the first statement; in
            # autocommit mode it sends nothing, and this unit of work issues BEGIN/COMMIT/ROLLBACK itself.
            driver.autocommit = True
            # no_parameters: handed to psycopg as is (no placeholder parsing), so it goes as one simple query.
            connection.exec_driver_sql(_begin_statement(driver, caller), execution_options=NO_PARAMETERS)
            return connection
        except DBAPIError as exc:
            connection.close()
            if attempt or not exc.connection_invalidated:
                raise
            log.info("a pooled connection was closed by the server (%s); opening the transaction on a new one",
                     type(exc.orig).__name__)
        except BaseException:
            connection.close()
            raise
    raise AssertionError("unreachable")


def _end(connection: Connection, statement: str) -> None:
    """COMMIT or ROLLBACK, then give the connection back in psycopg's default (non-autocommit) mode."""
    try:
        connection.exec_driver_sql(statement, execution_options=NO_PARAMETERS)
    finally:
        _restore_autocommit(_driver(connection))


def _restore_autocommit(driver: psycopg.Connection) -> None:
    """Once the transaction is over, give the connection back in psycopg's default (non-autocommit) mode."""
    if not driver.closed and driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        driver.autocommit = False


@contextmanager
def unit_of_work(engine: Engine, caller: Caller, *, pipelined: bool = False) -> Iterator[UnitOfWork]:
    """Open one transaction as `caller`; commit on success, roll back on error, then run after-commit callbacks.

    Round trips: BEGIN + identity (one), each statement, COMMIT (one). `pipelined`: the block's statements and the
    COMMIT go in one round trip (psycopg's pipeline mode) — for a short transaction whose statements do not read
    each other's results: only statements run through `driver_cursor()` or `become()` belong in it, their results
    are read after the block, and an error is raised at its end (the statements after the failed one do not run)."""
    connection = _begin(engine, caller)
    with connection:
        uow = UnitOfWork(connection, caller)
        try:
            if pipelined:
                driver = _driver(connection)
                # No prepared statements in a pipeline: when its transaction fails, the server skips the statements
                # after the failure, and psycopg's prepared-statement cache could then name one that was never
                # prepared (a later run of it fails with "prepared statement … does not exist").
                threshold, driver.prepare_threshold = driver.prepare_threshold, None
                try:
                    with driver.pipeline():
                        yield uow
                        driver.execute("commit")
                finally:
                    driver.prepare_threshold = threshold
                _restore_autocommit(driver)
            else:
                yield uow
                _end(connection, "commit")
        except BaseException:
            try:
                _end(connection, "rollback")
            except Exception:  # noqa: BLE001 — a broken connection is invalidated; the original error matters
                log.debug("rollback failed", exc_info=True)
            raise
        callbacks = uow._after_commit
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the transaction is durable; a failed side effect is logged, never un-commits it
            log.exception("after-commit callback failed")
