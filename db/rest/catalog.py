"""The schema cache of the exposed schema `public`: tables (and views) with their columns, keys and the functions
that can be called through `/rest/v1/rpc`.

Every identifier the data API puts into SQL comes from here, never from the request: a request names a table or
column, the cache answers with the catalog's own entry (or nothing), and the query builder quotes that entry.
The cache is loaded from `pg_catalog` (readable by every role) and replaced wholesale when it is reloaded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import psycopg

EXPOSED_SCHEMA = "public"

_TABLES_SQL = """
select c.relname, c.relkind, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), t.typname,
       t.typcategory, a.attnotnull, (a.atthasdef or a.attidentity <> '' or a.attgenerated <> '')
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
join pg_catalog.pg_type t on t.oid = a.atttypid
where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p', 'f')
order by c.relname, a.attnum
"""

_KEYS_SQL = """
select c.relname, i.indisprimary,
       array(select a.attname from unnest(i.indkey) with ordinality k(attnum, pos)
             join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum order by k.pos)
from pg_catalog.pg_index i
join pg_catalog.pg_class c on c.oid = i.indrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and i.indisunique and i.indpred is null and i.indexprs is null
order by c.relname, i.indisprimary desc, i.indexrelid
"""

# Plain functions only (no procedures, aggregates or trigger functions), with their IN arguments.
_FUNCTIONS_SQL = """
select p.oid, p.proname, p.provolatile, p.proretset, p.pronargdefaults,
       pg_catalog.format_type(p.prorettype, null), rt.typname, rt.typtype,
       coalesce(p.proargnames, '{}'::text[]), coalesce(p.proargmodes::text[], '{}'::text[]),
       array(select pg_catalog.format_type(x, null) from unnest(p.proargtypes) with ordinality u(x, pos)
             order by u.pos),
       array(select tt.typname from unnest(p.proargtypes) with ordinality u(x, pos)
             join pg_catalog.pg_type tt on tt.oid = u.x order by u.pos)
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
join pg_catalog.pg_type rt on rt.oid = p.prorettype
where n.nspname = %s and p.prokind = 'f'
  and rt.typname not in ('trigger', 'event_trigger', 'internal', 'language_handler', 'fdw_handler',
                         'index_am_handler', 'tsm_handler', 'table_am_handler')
order by p.proname, p.oid
"""

JSON_TYPES = frozenset({"json", "jsonb"})
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "citext"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): safe to splice into a CAST, it comes from the catalog
    type_name: str
    is_array: bool
    not_null: bool
    has_default: bool

    @property
    def is_json(self) -> bool:
        return self.type_name in JSON_TYPES

    @property
    def is_text(self) -> bool:
        return self.type_name in TEXT_TYPES


@dataclass
class Table:
    name: str
    kind: str
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    unique_keys: list[tuple[str, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class Argument:
    name: str
    type: str
    type_name: str
    has_default: bool


@dataclass(frozen=True)
class Function:
    oid: int
    name: str
    volatility: str  # i | s | v
    returns_set: bool
    return_type: str
    returns_void: bool
    returns_composite: bool
    arguments: tuple[Argument, ...]

    @property
    def is_stable(self) -> bool:
        return self.volatility in ("i", "s")

    @property
    def required(self) -> frozenset[str]:
        return frozenset(arg.name for arg in self.arguments if not arg.has_default)

    @property
    def signature(self) -> str:
        return f"{EXPOSED_SCHEMA}.{self.name}({', '.join(arg.name for arg in self.arguments)})"


@dataclass
class Catalog:
    tables: dict[str, Table]
    functions: dict[str, list[Function]]
    fingerprint: str

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)


def load_catalog(conn: psycopg.Connection) -> Catalog:
    """Read the exposed schema from pg_catalog (one short read-only round of three queries)."""
    tables: dict[str, Table] = {}
    digest = hashlib.sha256()
    for relname, relkind, attname, fmt, typname, category, not_null, has_default in conn.execute(
            _TABLES_SQL, (EXPOSED_SCHEMA,)):
        table = tables.setdefault(relname, Table(relname, relkind))
        table.columns[attname] = Column(attname, fmt, typname, category == "A", not_null, has_default)
        digest.update(f"{relname}.{attname}:{fmt}:{not_null}:{has_default};".encode())
    for relname, is_primary, columns in conn.execute(_KEYS_SQL, (EXPOSED_SCHEMA,)):
        table = tables.get(relname)
        if table is None:
            continue
        key = tuple(columns)
        if is_primary:
            table.primary_key = key
        table.unique_keys.append(key)
        digest.update(f"{relname}:{key}:{is_primary};".encode())
    functions: dict[str, list[Function]] = {}
    for (oid, name, volatility, retset, ndefaults, rettype, rettypname, rettyptype, argnames, argmodes,
         argtypes, argtypnames) in conn.execute(_FUNCTIONS_SQL, (EXPOSED_SCHEMA,)):
        in_names = [n for n, m in zip(argnames, argmodes or ["i"] * len(argnames)) if m in ("i", "b", "v")] \
            if argmodes else list(argnames)
        if len(in_names) != len(argtypes) or any(not n for n in in_names):
            continue  # unnamed arguments cannot be passed as named JSON keys
        first_default = len(argtypes) - ndefaults
        arguments = tuple(Argument(n, t, tn, i >= first_default)
                          for i, (n, t, tn) in enumerate(zip(in_names, argtypes, argtypnames)))
        functions.setdefault(name, []).append(Function(
            oid, name, volatility, retset, rettype, rettypname == "void", rettyptype == "c", arguments))
        digest.update(f"{name}({','.join(argtypes)}):{rettype}:{volatility}:{retset};".encode())
    return Catalog(tables, functions, digest.hexdigest())
