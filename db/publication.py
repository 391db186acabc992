"""The one reader of the `supabase_realtime` publication: which tables are published, their columns and types, and
which columns each non-service role may not SELECT. The API validates joins with it, the relay shapes messages.

Cached for CATALOG_TTL_SECONDS (a GRANT or a newly published table applies within that); a table missing from
the cache triggers a re-read at most every MISS_RELOAD_SECONDS, so a table added to the publication is served at
once while joins naming unknown tables cannot turn into one catalog query each.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Engine

from db.uow import Caller, unit_of_work

PUBLICATION = "supabase_realtime"
ROLES_WITH_COLUMN_LIMITS = ("authenticated", "anon")
CATALOG_TTL_SECONDS = 30.0
MISS_RELOAD_SECONDS = 1.0

_PUBLISHED_COLUMNS = """
select p.schemaname, p.tablename, a.attname, t.typname,
       has_column_privilege('authenticated', c.oid, a.attnum, 'SELECT') as authenticated,
       has_column_privilege('anon', c.oid, a.attnum, 'SELECT') as anon,
       c.relrowsecurity as rls,
       exists (select from pg_index i where i.indrelid = c.oid and i.indisprimary) as has_primary_key,
       capture.owner_column
  from pg_publication_tables p
  join pg_namespace n on n.nspname = p.schemaname
  join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename
  join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  join pg_type t on t.oid = a.atttypid
  -- The capture trigger's first argument is the owner column ('' = none); no trigger = not captured.
  left join lateral (select split_part(encode(tg.tgargs, 'escape'), '\\000', 1) as owner_column
                       from pg_trigger tg where tg.tgrelid = c.oid and tg.tgname = 'realtime_capture') capture on true
 where p.pubname = :publication
 order by p.schemaname, p.tablename, a.attnum
"""

Routing = Literal["owner", "rls", "all"]


@dataclass(frozen=True)
class TableShape:
    """A published table as a change message needs it: `columns` as Realtime sends them (`[{name, type}]` in
    column order, `pg_type.typname`), and per role the columns that role may not SELECT (stripped on delivery)."""

    columns: list[dict[str, str]]
    hidden: dict[str, list[str]]
    # How a change reaches subscribers: by its owner column (the table's SELECT policies are exactly an owner
    # check), by evaluating RLS as each subscriber, or to all who may SELECT the table (RLS off). None: not
    # served, and `unserved` says why.
    routing: Routing | None = "owner"
    unserved: str | None = None
    types: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", {column["name"]: column["type"] for column in self.columns})


Published = dict[str, dict[str, TableShape]]  # {schema: {table: shape}}


def read_published(engine: Engine) -> Published:
    """The publication's tables, read now in one query as service_role."""
    with unit_of_work(engine, Caller.service()) as uow:
        rows = uow.execute(_PUBLISHED_COLUMNS, {"publication": PUBLICATION}).all()
    columns: dict[tuple[str, str], list] = {}
    for row in rows:
        columns.setdefault((row.schemaname, row.tablename), []).append(row)
    published: Published = {}
    for (schema, table), table_rows in columns.items():
        first = table_rows[0]
        routing, unserved = _routing(f"{schema}.{table}", first.has_primary_key, first.owner_column, first.rls)
        published.setdefault(schema, {})[table] = TableShape(
            columns=[{"name": row.attname, "type": row.typname} for row in table_rows],
            hidden={role: [row.attname for row in table_rows if not getattr(row, role)]
                    for role in ROLES_WITH_COLUMN_LIMITS},
            routing=routing,
            unserved=unserved,
        )
    return published


def _routing(name: str, has_primary_key: bool, owner_column: str | None,
             rls: bool) -> tuple[Routing | None, str | None]:
    if not has_primary_key:
        return None, f"{name} has no primary key, which realtime needs to identify a change"
    if owner_column is None:
        return None, (f"{name} is published but its changes are not captured: run "
                      "`select internal.sync_realtime_capture()` as its owner")
    if owner_column:
        return "owner", None
    return ("rls" if rls else "all"), None


class PublicationCatalog:
    """`read_published`, cached briefly."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self._clock = clock
        self._published: Published | None = None
        self._read_at = float("-inf")

    def tables(self) -> Published:
        if self._published is None or self._clock() - self._read_at >= CATALOG_TTL_SECONDS:
            self._reload()
        assert self._published is not None
        return self._published

    def shape(self, schema: str, table: str) -> TableShape | None:
        """The table's shape, or None when it is not in the publication even after a re-read. The relay asks
        only for tables whose changes were captured, so a miss means a table published since the last read: it
        re-reads at once (joins, which clients choose, go through the rate-limited `reload_after_miss`)."""
        found = self.tables().get(schema, {}).get(table)
        if found is None:
            self._reload()
            found = self.tables().get(schema, {}).get(table)
        return found

    def column_types(self) -> dict[str, dict[str, dict[str, str]]]:
        """{schema: {table: {column: type}}} of the tables realtime serves, what join validation checks bindings
        and filters against."""
        return {schema: {table: shape.types for table, shape in tables.items() if shape.routing}
                for schema, tables in self.tables().items()}

    def unserved(self) -> dict[str, dict[str, str]]:
        """{schema: {table: reason}} of published tables realtime cannot serve (a join names the reason)."""
        return {schema: {table: shape.unserved for table, shape in tables.items() if shape.unserved}
                for schema, tables in self.tables().items()}

    def reload_after_miss(self) -> bool:
        """Re-read now unless the last read is younger than MISS_RELOAD_SECONDS; whether it re-read."""
        if self._clock() - self._read_at < MISS_RELOAD_SECONDS:
            return False
        self._reload()
        return True

    def _reload(self) -> None:
        self._published = read_published(self.engine)
        self._read_at = self._clock()
