"""The message the relay publishes on Redis for each captured change and every API process fans out.

The relay builds it from an outbox row (db/outbox.py::change_event) and the API parses it back
(api/realtime/hub.py); both sides go through this one model, so the wire between them cannot drift.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

ChangeType = Literal["INSERT", "UPDATE", "DELETE"]


class Column(TypedDict):
    """One column as Supabase Realtime lists it in a change: name and `pg_type.typname`."""

    name: str
    type: str


class ChangeEvent(BaseModel):
    """One committed change of a published table (its outbox row, shaped by the publication's catalog)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    kind: Literal["change"] = "change"
    id: int  # the outbox id: a repeat after a relay crash carries the same id
    schema_name: str = Field(alias="schema")
    table: str
    type: ChangeType
    owner: str | None  # the user whose RLS lets them SELECT the row (owner routing); None for other tables
    # owner: to the owner's and service_role's channels; rls: to the subscribers RLS lets SELECT the row, evaluated
    # as each of them; all: to every subscriber whose role may SELECT the table (RLS off).
    routing: Literal["owner", "rls", "all"] = "owner"
    commit_timestamp: str  # "YYYY-MM-DDTHH:MM:SS.mmmZ", as Realtime sends it
    columns: list[Column]
    hidden: dict[str, list[str]]  # per role (authenticated, anon): the columns it may not SELECT
    record: dict[str, Any] | None  # the new row; None for DELETE
    old_record: dict[str, Any] | None  # the primary key; None for INSERT

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)
