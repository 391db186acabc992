"""Runs the data API's composed statements in the request's unit of work (so as the caller, under RLS)."""
from __future__ import annotations

from typing import Any

from db.rest.builder import Statement
from db.uow import UnitOfWork


def fetch_one(uow: UnitOfWork, statement: Statement) -> tuple[Any, ...] | None:
    """The statement's first row (the builders answer one row: a count, a JSON text, or both)."""
    cursor = uow.driver_cursor()
    cursor.execute(statement.query, statement.params)
    return cursor.fetchone()


def row_count(uow: UnitOfWork, statement: Statement) -> int:
    """Run a statement without RETURNING; the number of rows it affected."""
    cursor = uow.driver_cursor()
    cursor.execute(statement.query, statement.params)
    return max(cursor.rowcount, 0)
