"""Runs the data API's composed statements in the request's unit of work (so as the caller, under RLS)."""
from __future__ import annotations

from typing import Any

from db.rest.builder import UPDATED_SETTING, Statement
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


def upserted_existing(uow: UnitOfWork) -> int:
    """How many rows this transaction's merge-duplicates upsert updated rather than inserted."""
    cursor = uow.driver_cursor()
    cursor.execute("select coalesce(nullif(current_setting(%s, true), '')::int, 0)", (UPDATED_SETTING,))
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def planned_rows(uow: UnitOfWork, statement: Statement) -> int:
    """The planner's row estimate of an `EXPLAIN (FORMAT JSON)` statement."""
    row = fetch_one(uow, statement)
    assert row is not None
    return int(row[0][0]["Plan"]["Plan Rows"])
