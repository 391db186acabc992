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


class BroadcastEvent(BaseModel):
    """One Broadcast message for the members of a topic, published on the same Redis channel as changes: by an
    API process for a client's push (ephemeral, as on Supabase), or by the relay for a `realtime.messages` row
    (`realtime.send()`, `realtime.broadcast_changes()`, REST sends: committed first, so durable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["broadcast"] = "broadcast"
    topic: str  # the sub-topic, without `realtime:` (as realtime.messages stores it)
    private: bool
    event: str
    # The broadcast payload object as the clients receive it ({type, event, payload[, meta]}); None when the
    # user payload is raw bytes (a js binary push), then `binary` holds them base64-encoded.
    envelope: dict[str, Any] | None = None
    binary: str | None = None
    # The sending channel (process id, channel serial) when it asked not to receive its own message (self: false).
    exclude: tuple[str, int] | None = None

    def to_json(self) -> str:
        return self.model_dump_json()


class PresenceDiff(BaseModel):
    """A presence change on a topic, for every member of it in every API process: {key: {"metas": [...]}}."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["presence_diff"] = "presence_diff"
    topic: str
    private: bool
    joins: dict[str, dict[str, list[dict[str, Any]]]]
    leaves: dict[str, dict[str, list[dict[str, Any]]]]

    def to_json(self) -> str:
        return self.model_dump_json()
