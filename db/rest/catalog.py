"""The schema cache of the exposed schemas (`REST_SCHEMAS`): tables and views with their columns and keys, the
relationships between them (from foreign keys, as PostgREST builds them), computed fields, and the functions that
can be called through `/rest/v1/rpc`.

Every identifier the data API puts into SQL comes from here, never from the request: a request names a table,
column, relationship or function, the cache answers with the catalog's own entry (or nothing), and the query
builder quotes that entry. The cache is loaded from `pg_catalog` (readable by every role) and replaced wholesale
when it is reloaded.

Relationships follow PostgREST (`src/library/PostgREST/SchemaCache.hs`): a foreign key gives a many-to-one
relationship from its table and a one-to-many back (one-to-one both ways when the key's columns are also a
primary or unique key); a table whose primary key holds two foreign keys joins their targets many-to-many; views
take the relationships of the base-table columns they expose unchanged (through a view's target list); a function
taking one table row and returning table rows is a computed relationship.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

import psycopg

DEFAULT_SCHEMAS = ("public",)
EXPOSED_SCHEMA = "public"  # the default profile when REST_SCHEMAS is not set

_TABLES_SQL = """
select n.nspname, c.relname, c.relkind, c.oid, c.reltype, a.attnum, a.attname,
       pg_catalog.format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory, a.attnotnull,
       (a.atthasdef or a.attidentity <> '' or a.attgenerated <> '')
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
join pg_catalog.pg_type t on t.oid = a.atttypid
where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p', 'f') and not c.relispartition
order by n.nspname, c.relname, a.attnum
"""

_KEYS_SQL = """
select n.nspname, c.relname, i.indisprimary,
       array(select a.attname from unnest(i.indkey) with ordinality k(attnum, pos)
             join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum order by k.pos)
from pg_catalog.pg_index i
join pg_catalog.pg_class c on c.oid = i.indrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%s) and i.indisunique and i.indpred is null and i.indexprs is null
order by n.nspname, c.relname, i.indisprimary desc, i.indexrelid
"""

# Foreign keys between relations of the exposed schemas (partition children excluded).
_FOREIGN_KEYS_SQL = """
select n.nspname, c.relname, fn.nspname, f.relname, k.conname, c.oid, f.oid,
       array(select a.attname from unnest(k.conkey) with ordinality x(attnum, pos)
             join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = x.attnum order by x.pos),
       array(select a.attname from unnest(k.confkey) with ordinality x(attnum, pos)
             join pg_catalog.pg_attribute a on a.attrelid = k.confrelid and a.attnum = x.attnum order by x.pos)
from pg_catalog.pg_constraint k
join pg_catalog.pg_class c on c.oid = k.conrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_class f on f.oid = k.confrelid
join pg_catalog.pg_namespace fn on fn.oid = f.relnamespace
where k.contype = 'f' and k.conparentid = 0 and n.nspname = any(%s)
order by c.oid, k.conname
"""

# The rewrite rule of each view: its target list says which base column each view column shows unchanged.
_VIEWS_SQL = """
select c.oid, r.ev_action::text
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_rewrite r on r.ev_class = c.oid and r.rulename = '_RETURN'
where c.relkind in ('v', 'm') and n.nspname = any(%s)
"""

_ATTRIBUTES_SQL = """
select a.attrelid, a.attnum, a.attname from pg_catalog.pg_attribute a
where a.attrelid = any(%s) and a.attnum > 0 and not a.attisdropped
"""

# Plain functions (no procedures, aggregates or trigger functions), with every argument and what they return.
_FUNCTIONS_SQL = """
select p.oid, n.nspname, p.proname, p.provolatile, p.proretset, p.prorows, p.pronargs, p.pronargdefaults,
       p.provariadic <> 0,
       pg_catalog.format_type(p.prorettype, null), rt.typname, rt.typtype, rtn.nspname, rc.relname,
       coalesce(p.proargnames, '{}'::text[]), coalesce(p.proargmodes::text[], '{}'::text[]),
       array(select pg_catalog.format_type(x, null) from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
             with ordinality u(x, pos) order by u.pos),
       array(select tt.typname from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
             with ordinality u(x, pos) join pg_catalog.pg_type tt on tt.oid = u.x order by u.pos),
       array(select tt.typrelid from unnest(p.proargtypes::oid[]) with ordinality u(x, pos)
             join pg_catalog.pg_type tt on tt.oid = u.x order by u.pos)
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
join pg_catalog.pg_type rt on rt.oid = p.prorettype
join pg_catalog.pg_namespace rtn on rtn.oid = rt.typnamespace
left join pg_catalog.pg_class rc on rc.oid = rt.typrelid and rc.relkind in ('r', 'v', 'm', 'p', 'f')
where n.nspname = any(%s) and p.prokind = 'f'
  and rt.typname not in ('trigger', 'event_trigger', 'internal', 'language_handler', 'fdw_handler',
                         'index_am_handler', 'tsm_handler', 'table_am_handler')
order by n.nspname, p.proname, p.oid
"""

# Type names a `::cast` in select may name (pg_catalog's and the exposed schemas' types).
_TYPES_SQL = """
select t.typname, n.nspname from pg_catalog.pg_type t join pg_catalog.pg_namespace n on n.oid = t.typnamespace
where (n.nspname = 'pg_catalog' or n.nspname = any(%s)) and t.typisdefined and t.typname !~ '^_'
"""

# SQL's own spellings of built-in types, which are not pg_type names.
TYPE_ALIASES = {
    "int": "integer", "integer": "integer", "smallint": "smallint", "bigint": "bigint", "real": "real",
    "double precision": "double precision", "float": "double precision", "decimal": "numeric",
    "boolean": "boolean", "character varying": "character varying", "character": "character",
    "char": "character", "varchar": "character varying", "timestamp with time zone": "timestamp with time zone",
    "timestamp without time zone": "timestamp without time zone", "time with time zone": "time with time zone",
    "time without time zone": "time without time zone",
}

JSON_TYPES = frozenset({"json", "jsonb"})
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "citext"})
SINGLE_UNNAMED_TYPES = frozenset({"json", "jsonb", "text", "xml", "bytea"})
Cardinality = Literal["many-to-one", "one-to-many", "one-to-one", "many-to-many"]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): safe to splice into a CAST, it comes from the catalog
    type_name: str
    is_array: bool
    not_null: bool
    has_default: bool
    is_composite: bool = False

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
    schema: str = EXPOSED_SCHEMA
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    unique_keys: list[tuple[str, ...]] = field(default_factory=list)
    oid: int = 0
    row_type: int = 0

    @property
    def is_view(self) -> bool:
        return self.kind in ("v", "m")


@dataclass(frozen=True)
class Junction:
    table: str
    constraint1: str  # junction → origin
    constraint2: str  # junction → foreign table
    source_columns: tuple[tuple[str, str], ...]  # (junction column, origin column)
    target_columns: tuple[tuple[str, str], ...]  # (junction column, foreign column)


@dataclass(frozen=True)
class Relationship:
    """One way to embed `foreign_table` into a row of `table` (both in `schema`)."""

    schema: str
    table: str
    foreign_table: str
    cardinality: Cardinality
    constraint: str = ""
    columns: tuple[tuple[str, str], ...] = ()  # (column of table, column of foreign_table)
    junction: Junction | None = None
    function: str | None = None  # a computed relationship: schema.function(table row) → foreign_table rows
    table_is_view: bool = False
    foreign_is_view: bool = False

    @property
    def is_self(self) -> bool:
        return self.table == self.foreign_table

    @property
    def to_one(self) -> bool:
        return self.cardinality in ("many-to-one", "one-to-one")


@dataclass(frozen=True)
class Argument:
    name: str  # "" for an unnamed argument
    type: str
    type_name: str
    has_default: bool
    is_variadic: bool = False
    row_table: int = 0  # pg_class oid when the argument is a table or view row


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
    schema: str = EXPOSED_SCHEMA
    return_table: str | None = None  # the table/view whose rows it returns (same schema as its type)
    return_table_schema: str | None = None
    out_columns: tuple[tuple[str, str], ...] = ()  # TABLE(...)/OUT columns: (name, format_type)
    rows: float = 1000.0

    @property
    def is_stable(self) -> bool:
        return self.volatility in ("i", "s")

    @property
    def required(self) -> frozenset[str]:
        return frozenset(arg.name for arg in self.arguments if not arg.has_default)

    @property
    def returns_single_row(self) -> bool:
        return not self.returns_set or self.rows == 1

    @property
    def signature(self) -> str:
        return f"{self.schema}.{self.name}({', '.join(f'{a.name} => {a.type}' for a in self.arguments)})"


@dataclass(frozen=True)
class ComputedField:
    function: str
    schema: str
    return_type: str
    returns_set: bool


@dataclass
class Catalog:
    schemas: tuple[str, ...]
    tables: dict[tuple[str, str], Table]
    functions: dict[tuple[str, str], list[Function]]
    relationships: dict[tuple[str, str], list[Relationship]]
    computed_fields: dict[tuple[str, str], dict[str, ComputedField]]
    types: frozenset[str]
    fingerprint: str

    def table(self, name: str, schema: str | None = None) -> Table | None:
        return self.tables.get((schema or self.schemas[0], name))

    def table_names(self, schema: str | None = None) -> list[str]:
        wanted = schema or self.schemas[0]
        return [name for sch, name in self.tables if sch == wanted]

    def functions_named(self, name: str, schema: str | None = None) -> list[Function]:
        return self.functions.get((schema or self.schemas[0], name), [])

    def function_names(self, schema: str | None = None) -> list[str]:
        wanted = schema or self.schemas[0]
        return [name for sch, name in self.functions if sch == wanted]

    def relationships_of(self, table: str, schema: str | None = None) -> list[Relationship]:
        return self.relationships.get((schema or self.schemas[0], table), [])

    def computed_field(self, table: str, name: str, schema: str | None = None) -> ComputedField | None:
        return self.computed_fields.get((schema or self.schemas[0], table), {}).get(name)

    def cast_type(self, text: str) -> str | None:
        """The SQL for a `::cast` a request names: a known type (or `type[]`), else None."""
        name = " ".join(text.lower().split())
        array = name.endswith("[]")
        base = name.removesuffix("[]").strip()
        sql = TYPE_ALIASES.get(base) or (f'"{base}"' if base in self.types else None)
        if sql is None:
            return None
        return f"{sql}[]" if array else sql


def view_column_sources(ev_action: str) -> dict[int, tuple[int, int]]:
    """From a view's stored rule (`pg_rewrite.ev_action` as text): view column number → (origin relation oid,
    origin column number), for the columns of the top-level query that show a base column unchanged."""
    target_list = _top_level_field(ev_action, ":targetList")
    sources: dict[int, tuple[int, int]] = {}
    if target_list is None:
        return sources
    for entry in _top_level_nodes(target_list):
        flat = _strip_nested(entry)
        resno = re.search(r":resno (\d+)", flat)
        origin = re.search(r":resorigtbl (\d+) :resorigcol (\d+)", flat)
        junk = re.search(r":resjunk true", flat)
        if resno and origin and not junk and int(origin.group(1)):
            sources[int(resno.group(1))] = (int(origin.group(1)), int(origin.group(2)))
    return sources


def _walk(text: str):
    """(index, depth) for each character outside backslash escapes (pg_node_tree escapes {}() and spaces)."""
    depth, i = 0, 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char in "{(":
            depth += 1
        yield i, depth
        if char in "})":
            depth -= 1
        i += 1


def _top_level_field(text: str, name: str) -> str | None:
    """The list value of `name` in the first QUERY node (depth 2: inside `({QUERY ...})`)."""
    for i, depth in _walk(text):
        if depth == 2 and text.startswith(name + " ", i):
            start = i + len(name) + 1
            if text[start] != "(":
                return None
            for j, inner in _walk(text[start:]):
                if inner == 0:
                    return text[start + 1:start + j]
                if text[start + j] == ")" and inner == 1:
                    return text[start + 1:start + j]
    return None


def _top_level_nodes(text: str) -> list[str]:
    nodes, start = [], None
    for i, depth in _walk(text):
        if text[i] == "{" and depth == 1:
            start = i
        elif text[i] == "}" and depth == 1 and start is not None:
            nodes.append(text[start:i + 1])
            start = None
    return nodes


def _strip_nested(node: str) -> str:
    out = []
    for i, depth in _walk(node):
        if depth <= 1:
            out.append(node[i])
    return "".join(out)


def load_catalog(conn: psycopg.Connection, schemas: tuple[str, ...] | list[str] = DEFAULT_SCHEMAS) -> Catalog:
    """Read the exposed schemas from pg_catalog (one short read-only round of a few queries)."""
    schemas = tuple(schemas)
    names = list(schemas)
    tables: dict[tuple[str, str], Table] = {}
    by_oid: dict[int, Table] = {}
    by_row_type: dict[int, Table] = {}
    digest = hashlib.sha256()
    for (schema, relname, relkind, oid, reltype, _attnum, attname, fmt, typname, category, not_null,
         has_default) in conn.execute(_TABLES_SQL, (names,)):
        table = tables.get((schema, relname))
        if table is None:
            table = tables[(schema, relname)] = Table(relname, relkind, schema, oid=oid, row_type=reltype)
            by_oid[oid] = by_row_type[reltype] = table
        table.columns[attname] = Column(attname, fmt, typname, category == "A", not_null, has_default,
                                        category == "C")
        digest.update(f"{schema}.{relname}.{attname}:{fmt}:{not_null}:{has_default};".encode())
    for schema, relname, is_primary, columns in conn.execute(_KEYS_SQL, (names,)):
        table = tables.get((schema, relname))
        if table is None:
            continue
        key = tuple(columns)
        if is_primary:
            table.primary_key = key
        table.unique_keys.append(key)
        digest.update(f"{schema}.{relname}:{key}:{is_primary};".encode())

    relationships = _foreign_key_relationships(conn, names, tables, by_oid, digest)
    functions, computed_fields, computed_rels = _functions(conn, names, by_row_type, digest)
    for rel in computed_rels:
        relationships.setdefault((rel.schema, rel.table), []).append(rel)
    types = frozenset(name for name, _ in conn.execute(_TYPES_SQL, (names,)))
    return Catalog(schemas, tables, functions, relationships, computed_fields, types, digest.hexdigest())


def _foreign_key_relationships(conn: psycopg.Connection, names: list[str], tables: dict[tuple[str, str], Table],
                               by_oid: dict[int, Table], digest) -> dict[tuple[str, str], list[Relationship]]:
    keys = [(schema, table, fschema, ftable, conname, oid, foid, tuple(cols), tuple(fcols))
            for schema, table, fschema, ftable, conname, oid, foid, cols, fcols
            in conn.execute(_FOREIGN_KEYS_SQL, (names,))]
    # view column number → origin (table oid, column number), resolved through views of views
    view_sources: dict[int, dict[int, tuple[int, int]]] = {
        oid: view_column_sources(action) for oid, action in conn.execute(_VIEWS_SQL, (names,))}
    attnames: dict[tuple[int, int], str] = {}
    relids = list({oid for oid in view_sources} | {o for m in view_sources.values() for o, _ in m.values()}
                  | {k[5] for k in keys} | {k[6] for k in keys})
    if relids:
        for relid, attnum, attname in conn.execute(_ATTRIBUTES_SQL, (relids,)):
            attnames[(relid, attnum)] = attname

    def base_of(view_oid: int, attnum: int, seen: frozenset[int] = frozenset()) -> tuple[int, int] | None:
        origin = view_sources.get(view_oid, {}).get(attnum)
        if origin is None or origin[0] in seen:
            return None
        if origin[0] in view_sources:
            return base_of(origin[0], origin[1], seen | {view_oid})
        return origin

    # (base table oid, base column name) → [(view table, view column name)]
    exposed: dict[tuple[int, str], list[tuple[Table, str]]] = {}
    for view_oid, mapping in view_sources.items():
        view = by_oid.get(view_oid)
        if view is None:
            continue
        for attnum in mapping:
            origin = base_of(view_oid, attnum)
            if origin is not None and (origin[0], origin[1]) in attnames and (view_oid, attnum) in attnames:
                exposed.setdefault((origin[0], attnames[origin]), []).append((view, attnames[(view_oid, attnum)]))

    def views_showing(oid: int, columns: tuple[str, ...]) -> list[tuple[Table, tuple[str, ...]]]:
        """Views that show all `columns` of table `oid` (each under its view name)."""
        if not columns:
            return []
        per_view: dict[int, dict[str, str]] = {}
        for column in columns:
            for view, view_column in exposed.get((oid, column), []):
                per_view.setdefault(view.oid, {}).setdefault(column, view_column)
        return [(by_oid[voids], tuple(mapping[c] for c in columns))
                for voids, mapping in per_view.items() if len(mapping) == len(columns)]

    rels: list[Relationship] = []
    for schema, table, fschema, ftable, conname, oid, foid, cols, fcols in keys:
        origin, target = tables.get((schema, table)), tables.get((fschema, ftable))
        if origin is None or target is None or schema != fschema:
            continue
        digest.update(f"{schema}.{table}->{ftable}:{conname}:{cols}:{fcols};".encode())
        one_to_one = any(set(key) == set(cols) for key in origin.unique_keys)
        cardinality: Cardinality = "one-to-one" if one_to_one else "many-to-one"
        pairs = tuple(zip(cols, fcols))
        rels.append(Relationship(schema, table, ftable, cardinality, conname, pairs))
        origin_views = views_showing(oid, cols)
        target_views = views_showing(foid, fcols)
        for view, view_cols in origin_views:
            rels.append(Relationship(schema, view.name, ftable, cardinality, conname, tuple(zip(view_cols, fcols)),
                                     table_is_view=True))
        for view, view_fcols in target_views:
            rels.append(Relationship(schema, table, view.name, cardinality, conname, tuple(zip(cols, view_fcols)),
                                     foreign_is_view=True))
        for view, view_cols in origin_views:
            for fview, view_fcols in target_views:
                rels.append(Relationship(schema, view.name, fview.name, cardinality, conname,
                                         tuple(zip(view_cols, view_fcols)), table_is_view=True, foreign_is_view=True))

    many_to_many = []
    by_table: dict[tuple[str, str], list[Relationship]] = {}
    for rel in rels:
        by_table.setdefault((rel.schema, rel.table), []).append(rel)
    for (schema, junction_name), outgoing in by_table.items():
        junction = tables[(schema, junction_name)]
        primary = set(junction.primary_key)
        for first in outgoing:
            for second in outgoing:
                if first.constraint == second.constraint or first.table_is_view:
                    continue
                if {c for c, _ in first.columns} | {c for c, _ in second.columns} <= primary and primary:
                    many_to_many.append(Relationship(
                        schema, first.foreign_table, second.foreign_table, "many-to-many",
                        columns=(), junction=Junction(junction_name, first.constraint, second.constraint,
                                                      first.columns, second.columns),
                        table_is_view=first.foreign_is_view, foreign_is_view=second.foreign_is_view))
    inverse = [Relationship(rel.schema, rel.foreign_table, rel.table,
                            "one-to-many" if rel.cardinality == "many-to-one" else "one-to-one", rel.constraint,
                            tuple((b, a) for a, b in rel.columns), table_is_view=rel.foreign_is_view,
                            foreign_is_view=rel.table_is_view)
               for rel in rels]
    result: dict[tuple[str, str], list[Relationship]] = {}
    for rel in [*rels, *many_to_many, *inverse]:
        result.setdefault((rel.schema, rel.table), []).append(rel)
    return result


def _functions(conn: psycopg.Connection, names: list[str], by_row_type: dict[int, Table], digest):
    functions: dict[tuple[str, str], list[Function]] = {}
    computed_fields: dict[tuple[str, str], dict[str, ComputedField]] = {}
    computed_rels: list[Relationship] = []
    by_oid = {table.oid: table for table in by_row_type.values()}
    for (oid, schema, name, volatility, retset, rows, nargs, ndefaults, has_variadic, rettype, rettypname,
         rettyptype, rettypschema, retrelname, argnames, argmodes, argtypes, argtypnames,
         argrelids) in conn.execute(_FUNCTIONS_SQL, (names,)):
        modes = list(argmodes) if argmodes else ["i"] * len(argtypes)
        names_all = list(argnames) + [""] * (len(argtypes) - len(argnames))
        inputs = [(n, t, tn, m) for n, t, tn, m in zip(names_all, argtypes, argtypnames, modes)
                  if m in ("i", "b", "v")]
        outputs = tuple((n, t) for n, t, _tn, m in zip(names_all, argtypes, argtypnames, modes)
                        if m in ("o", "b", "t"))
        first_default = len(inputs) - ndefaults
        arguments = tuple(Argument(n or "", t, tn, i >= first_default, m == "v",
                                   argrelids[i] if i < len(argrelids) else 0)
                          for i, (n, t, tn, m) in enumerate(inputs))
        unnamed = [arg for arg in arguments if not arg.name]
        if unnamed and not (len(arguments) == 1 and arguments[0].type_name in SINGLE_UNNAMED_TYPES):
            callable_ = False
        else:
            callable_ = True
        composite = rettyptype == "c" or bool(outputs and rettypname == "record")
        fn = Function(oid, name, volatility, retset, rettype, rettypname == "void", composite, arguments, schema,
                      retrelname if retrelname and rettypschema in names else None,
                      rettypschema if retrelname else None, outputs if rettypname == "record" else (),
                      float(rows or 0))
        digest.update(f"{schema}.{name}({','.join(argtypes)}):{rettype}:{volatility}:{retset}:{rows};".encode())
        # A function of one table row is a computed field of that table, or a computed relationship when it
        # returns table rows.
        if len(arguments) == 1 and arguments[0].row_table and arguments[0].row_table in by_oid:
            origin = by_oid[arguments[0].row_table]
            if origin.schema == schema:
                if fn.return_table and fn.return_table_schema == schema:
                    computed_rels.append(Relationship(
                        schema, origin.name, fn.return_table,
                        "many-to-one" if fn.returns_single_row else "one-to-many", function=name))
                computed_fields.setdefault((schema, origin.name), {})[name] = ComputedField(
                    name, schema, rettype, retset)
        if callable_:
            functions.setdefault((schema, name), []).append(fn)
    return functions, computed_fields, computed_rels
