"""Errors the data API's planner and builder raise about a request, in PostgREST's terms: the HTTP status, the
code (`PGRST…` or a SQLSTATE), the message, details and hint PostgREST would send. api/rest renders them."""
from __future__ import annotations

from typing import Any


class RequestError(ValueError):
    def __init__(self, status: int, code: str, message: str, *, details: Any = None, hint: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint


def column_not_found(alias: str, column: str) -> RequestError:
    """What PostgreSQL says (42703) when a select, filter or order names a column the relation does not have."""
    return RequestError(400, "42703", f"column {alias}.{column} does not exist")
