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
from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

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

    def execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        if isinstance(statement, str):
            statement = text(statement)
        return self.connection.execute(statement, params or {})

    def driver_cursor(self) -> psycopg.Cursor:
        """A cursor in this transaction for statements composed with `psycopg.sql` (positional parameters):
        the data API's builder (db/rest/) composes those, and runs them through db/rest/execute.py."""
        return self.connection.connection.driver_connection.cursor()


def set_identity(connection: Connection, caller: Caller) -> None:
    """Become `caller` for the rest of the current transaction."""
    if caller.role not in DATABASE_ROLES:  # the role name is bound as a value, but only these three are meant
        raise ValueError(f"unknown database role {caller.role!r}")
    connection.execute(
        text("select set_config('role', :role, true), set_config('request.jwt.claims', :claims, true)"),
        {"role": caller.role, "claims": json.dumps(caller.claims, separators=(",", ":"))},
    )


@contextmanager
def unit_of_work(engine: Engine, caller: Caller) -> Iterator[UnitOfWork]:
    """Open one transaction as `caller`; commit on success, roll back on error, then run after-commit callbacks."""
    with engine.connect() as connection:
        with connection.begin():
            set_identity(connection, caller)
            uow = UnitOfWork(connection, caller)
            yield uow
        callbacks = uow._after_commit
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the transaction is durable; a failed side effect is logged, never un-commits it
            log.exception("after-commit callback failed")
