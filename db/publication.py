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

from sqlalchemy import Engine

from db.uow import Caller, unit_of_work

PUBLICATION = "supabase_realtime"
ROLES_WITH_COLUMN_LIMITS = ("authenticated", "anon")
CATALOG_TTL_SECONDS = 30.0
MISS_RELOAD_SECONDS = 1.0

_PUBLISHED_COLUMNS = """
select p.schemaname, p.tablename, a.attname, t.typname,
       has_column_privilege('authenticated', c.oid, a.attnum, 'SELECT') as authenticated,
       has_column_privilege('anon', c.oid, a.attnum, 'SELECT') as anon
  from pg_publication_tables p
  join pg_namespace n on n.nspname = p.schemaname
  join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename
  join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  join pg_type t on t.oid = a.atttypid
 where p.pubname = :publication
 order by p.schemaname, p.tablename, a.attnum
"""


@dataclass(frozen=True)
class TableShape:
    """A published table as a change message needs it: `columns` as Realtime sends them (`[{name, type}]` in
    column order, `pg_type.typname`), and per role the columns that role may not SELECT (stripped on delivery)."""

    columns: list[dict[str, str]]
    hidden: dict[str, list[str]]
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
        published.setdefault(schema, {})[table] = TableShape(
            columns=[{"name": row.attname, "type": row.typname} for row in table_rows],
            hidden={role: [row.attname for row in table_rows if not getattr(row, role)]
                    for role in ROLES_WITH_COLUMN_LIMITS},
        )
    return published


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
        """The table's shape, or None when it is not in the publication (after one re-read, rate-limited)."""
        found = self.tables().get(schema, {}).get(table)
        if found is None and self._clock() - self._read_at >= MISS_RELOAD_SECONDS:
            self._reload()
            found = self.tables().get(schema, {}).get(table)
        return found

    def column_types(self) -> dict[str, dict[str, dict[str, str]]]:
        """{schema: {table: {column: type}}}, what join validation checks bindings and filters against."""
        return {schema: {table: shape.types for table, shape in tables.items()}
                for schema, tables in self.tables().items()}

    def _reload(self) -> None:
        self._published = read_published(self.engine)
        self._read_at = self._clock()
