"""What a channel subscribes to: `config.postgres_changes` bindings and their filters, validated against the
publication, and whether a change matches. Pure functions, unit-tested in tests/realtime/test_protocol.py."""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from api.realtime.protocol import ProtocolError, dumps
from db.rest.grammar import GrammarError, parse_in_list
from schemas.realtime import ChangeEvent

EVENTS = ("*", "INSERT", "UPDATE", "DELETE")
FILTER_OPERATORS = ("eq", "neq", "lt", "lte", "gt", "gte", "in")
NUMERIC_TYPES = frozenset({"int2", "int4", "int8", "float4", "float8", "numeric", "oid"})
TIME_TYPES = frozenset({"timestamptz", "timestamp", "date"})


# --- filters ------------------------------------------------------------------------------------------------

_FILTER = re.compile(r"^(?P<column>[A-Za-z_][A-Za-z0-9_]*)=(?P<op>[a-z]+)\.(?P<value>.*)$", re.S)


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    values: tuple[str, ...]  # one value, or the members of `in.(...)`


def parse_filter(text: str) -> Filter:
    """`<column>=<op>.<value>` with op in eq/neq/lt/lte/gt/gte/in; `in.(a,"b c")` lists values."""
    match = _FILTER.match(text.strip())
    if not match:
        raise ProtocolError(f"Error parsing `filter` params: {text!r} is not <column>=<operator>.<value>")
    op, value = match["op"], match["value"]
    if op not in FILTER_OPERATORS:
        raise ProtocolError(f"Error parsing `filter` params: operator {op!r} is not one of "
                            f"{', '.join(FILTER_OPERATORS)}")
    if op == "in":
        try:
            values = parse_in_list(value)  # the same quoting rules as /rest/v1 (py, js and Dart clients)
        except GrammarError as exc:
            raise ProtocolError(f"Error parsing `filter` params: {exc.message}") from exc
        return Filter(match["column"], op, tuple(values))
    return Filter(match["column"], op, (value,))


def _coerce(value: Any, typname: str) -> Any:
    """A record value or filter literal as a comparable Python value for the column's type (None = no match)."""
    if value is None:
        return None
    try:
        if typname in NUMERIC_TYPES:
            return Decimal(str(value))
        if typname == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).lower()
            return {"true": True, "t": True, "false": False, "f": False}.get(lowered)
        if typname in TIME_TYPES:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=None)
        if typname == "uuid":
            return str(value).lower()
    except (InvalidOperation, ValueError):
        return None
    return value if isinstance(value, str) else dumps(value) if isinstance(value, (dict, list)) else str(value)


def filter_matches(flt: Filter, row: dict[str, Any] | None, types: dict[str, str]) -> bool:
    """Whether `row` passes the filter. A DELETE's old record holds only the primary key: a filter on another
    column is then not evaluated (the change is delivered, RLS still applies)."""
    if row is None or flt.column not in row:
        return True
    typname = types.get(flt.column, "text")
    actual = _coerce(row[flt.column], typname)
    if actual is None:
        return False  # SQL: a comparison with NULL is never true
    wanted = [_coerce(v, typname) for v in flt.values]
    try:
        if flt.op == "eq":
            return actual == wanted[0]
        if flt.op == "neq":
            return wanted[0] is not None and actual != wanted[0]
        if flt.op == "in":
            return actual in wanted
        if wanted[0] is None:
            return False
        if flt.op == "lt":
            return actual < wanted[0]
        if flt.op == "lte":
            return actual <= wanted[0]
        if flt.op == "gt":
            return actual > wanted[0]
        return actual >= wanted[0]
    except TypeError:  # e.g. naive vs aware datetimes
        return False


# --- bindings -----------------------------------------------------------------------------------------------

@dataclass
class Binding:
    """One `config.postgres_changes` entry: echoed as sent, plus its id."""

    raw: dict[str, Any]
    id: int
    event: str
    schema: str
    table: str | None  # None = every published table of the schema
    filter: Filter | None = None
    tables: frozenset[str] = field(default_factory=frozenset)  # published tables this binding covers

    def matches(self, change: ChangeEvent, types: dict[str, str]) -> bool:
        if self.event != "*" and self.event != change.type:
            return False
        if change.schema_name != self.schema or change.table not in self.tables:
            return False
        if self.filter is None:
            return True
        row = change.old_record if change.type == "DELETE" else change.record
        return filter_matches(self.filter, row, types)


def binding_id(raw: dict[str, Any], taken: set[int]) -> int:
    """A stable, positive, non-zero id per binding (the clients ignore id 0), distinct within the channel."""
    value = zlib.crc32(dumps(raw).encode()) & 0x7FFFFFF or 1
    while value in taken:
        value = value % 0x7FFFFFF + 1
    return value


class UnknownTableError(ProtocolError):
    """A binding names a table realtime does not serve (not published, or published but unservable)."""


def parse_bindings(config: Any, published: dict[str, dict[str, dict[str, str]]],
                   unserved: dict[str, dict[str, str]] | None = None) -> list[Binding]:
    """Validate `config.postgres_changes` against the tables realtime serves ({schema: {table: {column: type}}});
    `unserved` ({schema: {table: reason}}) names why a published table cannot be joined."""
    if config is None:
        return []
    if not isinstance(config, list):
        raise ProtocolError("postgres_changes must be a list")
    bindings: list[Binding] = []
    taken: set[int] = set()
    for index, raw in enumerate(config):
        where = f"postgres_changes[{index}]"
        if not isinstance(raw, dict):
            raise ProtocolError(f"{where} must be an object")
        for key in ("event", "schema", "table", "filter"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise ProtocolError(f"Unable to subscribe to changes with given parameters: {where}.{key} must be "
                                    f"a string, not {type(raw[key]).__name__}")
        event = raw.get("event")
        if event not in EVENTS:
            raise ProtocolError(f"Unable to subscribe to changes with given parameters: event {event!r} is not one "
                                f"of {', '.join(EVENTS)}")
        schema = raw.get("schema") or "public"
        table = raw.get("table")
        if table in (None, "", "*"):
            tables = frozenset(published.get(schema, {}))
            table = None
        else:
            tables = frozenset({table}) if table in published.get(schema, {}) else frozenset()
        if not tables:
            reason = (unserved or {}).get(schema, {}).get(table or "")
            raise UnknownTableError("Unable to subscribe to changes with given parameters: " + (
                reason or f"{schema}.{table or '*'} is not in the supabase_realtime publication"))
        flt = None
        if raw.get("filter") not in (None, ""):
            flt = parse_filter(raw["filter"])
            if not all(flt.column in published[schema][name] for name in tables):
                raise ProtocolError(f"Error parsing `filter` params: unknown column {flt.column!r}")
        ident = binding_id(raw, taken)
        taken.add(ident)
        bindings.append(Binding(raw, ident, event, schema, table, flt, tables))
    return bindings


def join_response(bindings: list[Binding]) -> dict[str, Any]:
    """The join reply: each binding exactly as received plus its integer id, in the client's order."""
    return {"postgres_changes": [{**binding.raw, "id": binding.id} for binding in bindings]}
