"""Resolves a parsed read (db/rest/grammar.py) against the schema cache into a tree of read nodes: which relation
each level reads, which relationship joins it to its parent (PGRST200/201 when none or several), which filters,
order and range apply at each level (PGRST108 for a level that is not embedded), and the SQL aliases PostgREST
uses (`<table>_<depth>` for an embedded table, `<parent>_<name>_<depth>` for its lateral subquery).

Pure logic over the catalog: nothing here touches the database; db/rest/builder.py turns the tree into SQL.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from db.rest.catalog import Catalog, Column, Relationship, Table
from db.rest.errors import RequestError, column_not_found
from db.rest.grammar import (
    Condition,
    EmbedPath,
    Field,
    Logic,
    OrderItem,
    Query,
    SelectField,
    SelectItem,
    SelectRelation,
)


@dataclass
class Source:
    """The relation a node reads: a table or view of the catalog, or the rows a function returned."""

    schema: str
    name: str  # the relation's name (relationships and computed fields are looked up by it)
    columns: dict[str, Column]
    table: Table | None = None

    @classmethod
    def of(cls, table: Table) -> Source:
        return cls(table.schema, table.name, table.columns, table)


@dataclass
class Node:
    source: Source
    alias: str  # the SQL alias of the relation in this node's FROM
    select: list[SelectField] = field(default_factory=list)
    filters: list[Condition | Logic] = field(default_factory=list)
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    embeds: list[Embed] = field(default_factory=list)
    depth: int = 0

    def embed_named(self, name: str) -> Embed | None:
        """The embed a filter, order or range path names: its alias, else its relation name."""
        for embed in self.embeds:
            if embed.output_name == name:
                return embed
        for embed in self.embeds:
            if embed.name == name:
                return embed
        return None


@dataclass
class Embed:
    node: Node
    relationship: Relationship
    name: str  # the target as written in select
    alias: str | None
    join: str | None
    spread: bool
    lateral_alias: str  # `<parent>_<name or alias>_<depth>`
    empty: bool = False  # `rel()`: joined for filtering, adds no key

    @property
    def output_name(self) -> str:
        return self.alias or self.name

    @property
    def inner(self) -> bool:
        return self.join == "inner"

    @property
    def to_one(self) -> bool:
        return self.relationship.to_one


@dataclass(frozen=True)
class NullEmbedFilter:
    """`rel=is.null` / `rel=not.is.null` on an embedded resource: an anti-join or an inner join."""

    embed: Embed
    negated: bool  # not.is.null


def find_relationship(catalog: Catalog, schema: str, origin: str, target: str, hint: str | None) -> Relationship:
    """PostgREST's `findRel`: the one relationship from `origin` that `target!hint` names, or PGRST200/201."""
    candidates = catalog.relationships_of(origin, schema)
    matches = []
    for rel in candidates:
        if rel.function is not None:
            if target == rel.function and hint is None:
                matches.append(rel)
            continue
        single = len(rel.columns) == 1
        fk_column = rel.columns[0][0] if single else None
        ref_column = rel.columns[0][1] if single else None
        if rel.is_self:
            if hint is None:
                ok = (target == rel.foreign_table and rel.cardinality == "one-to-many") or \
                     (target == fk_column and rel.cardinality == "many-to-one")
            else:
                ok = target == rel.foreign_table and rel.cardinality == "one-to-many" and hint == ref_column
        elif hint is None:
            ok = target == rel.foreign_table or (
                not rel.foreign_is_view and rel.junction is None
                and (target == rel.constraint or target == fk_column))
        else:
            ok = target == rel.foreign_table and (
                (rel.junction is None and (hint == rel.constraint or hint == fk_column or hint == ref_column))
                or (rel.junction is not None and hint == rel.junction.table))
        if ok:
            matches.append(rel)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise no_relationship(catalog, schema, origin, target, hint)
    raise RequestError(
        300, "PGRST201",
        f"Could not embed because more than one relationship was found for '{origin}' and '{target}'",
        details=[describe(rel) for rel in matches],
        hint=f"Try changing '{target}' to one of the following: "
             f"{', '.join(relationship_hint(rel) for rel in matches)}. Find the desired relationship in the "
             f"'details' key.")


def no_relationship(catalog: Catalog, schema: str, origin: str, target: str, hint: str | None) -> RequestError:
    details = (f"Searched for a foreign key relationship between '{origin}' and '{target}'"
               f"{f' using the hint {chr(39)}{hint}{chr(39)}' if hint else ''} in the schema '{schema}', but no "
               f"matches were found.")
    rels = catalog.relationships_of(origin, schema)
    suggestion = None
    if rels:
        names = sorted({r.foreign_table for r in rels})
        if target not in names:
            close = difflib.get_close_matches(target, names, n=1, cutoff=0.6)
            suggestion = f"Perhaps you meant '{close[0]}' instead of '{target}'." if close else None
    else:
        origins = sorted({table for sch, table in catalog.relationships if sch == schema})
        close = difflib.get_close_matches(origin, origins, n=1, cutoff=0.6)
        suggestion = f"Perhaps you meant '{close[0]}' instead of '{origin}'." if close else None
    return RequestError(400, "PGRST200",
                        f"Could not find a relationship between '{origin}' and '{target}' in the schema cache",
                        details=details, hint=suggestion)


def describe(rel: Relationship) -> dict[str, str]:
    """One candidate of a PGRST201 error, as PostgREST's `compressedRel`."""
    if rel.junction is not None:
        j = rel.junction
        relationship = (f"{j.table} using {j.constraint1}({', '.join(c for c, _ in j.source_columns)}) and "
                        f"{j.constraint2}({', '.join(c for c, _ in j.target_columns)})")
    else:
        relationship = (f"{rel.constraint} using {rel.table}({', '.join(a for a, _ in rel.columns)}) and "
                        f"{rel.foreign_table}({', '.join(b for _, b in rel.columns)})")
    return {"cardinality": rel.cardinality, "embedding": f"{rel.table} with {rel.foreign_table}",
            "relationship": relationship}


def relationship_hint(rel: Relationship) -> str:
    return f"'{rel.foreign_table}!{rel.junction.table if rel.junction else rel.constraint}'"


class Planner:
    def __init__(self, catalog: Catalog, schema: str, max_rows: int | None, *, aggregates: bool = False) -> None:
        self.catalog = catalog
        self.schema = schema
        self.max_rows = max_rows
        self.aggregates = aggregates  # PostgREST's `db-aggregates-enabled` (REST_AGGREGATES_ENABLED)

    # --- the tree ---------------------------------------------------------------------------------------------
    def plan(self, source: Source, query: Query, *, alias: str | None = None, root_filters: bool = True,
             root_range: bool = True) -> Node:
        """The read tree for `query` over `source`; `root_filters`/`root_range` False for a write's
        representation, whose own statement already applied them."""
        root = Node(source, alias or source.name)
        self._add_items(root, query.select)
        for path, nodes in [((), query.filters.items), *query.filters.embedded.items()]:
            if not path and not root_filters:
                continue
            target = self._node_at(root, path)
            target.filters.extend(nodes)
        for path, items in query.order.items():
            if not path and not root_range:
                continue
            self._node_at(root, path).order = items
        for path, limit in query.limits.items():
            if path or root_range:
                self._node_at(root, path).limit = limit
        for path, offset in query.offsets.items():
            if path or root_range:
                self._node_at(root, path).offset = offset
        self._restrict(root, is_root=True)
        return root

    def _restrict(self, node: Node, is_root: bool) -> None:
        if self.max_rows is not None:
            node.limit = self.max_rows if node.limit is None else min(node.limit, self.max_rows)
        for embed in node.embeds:
            self._restrict(embed.node, False)

    def _node_at(self, root: Node, path: EmbedPath) -> Node:
        node = root
        for name in path:
            embed = node.embed_named(name)
            if embed is None:
                raise RequestError(400, "PGRST108", f"'{name}' is not an embedded resource in this request",
                                   hint=f"Verify that '{name}' is included in the 'select' query parameter.")
            node = embed.node
        return node

    def _add_items(self, node: Node, items: list[SelectItem] | tuple[SelectItem, ...]) -> None:
        for item in items:
            if isinstance(item, SelectRelation):
                node.embeds.append(self._embed(node, item))
            else:
                node.select.append(item)

    def _embed(self, parent: Node, item: SelectRelation) -> Embed:
        rel = find_relationship(self.catalog, self.schema, parent.source.name, item.name, item.hint)
        table = self.catalog.table(rel.foreign_table, self.schema)
        if table is None:  # relationships only join relations of the catalog
            raise no_relationship(self.catalog, self.schema, parent.source.name, item.name, item.hint)
        depth = parent.depth + 1
        child = Node(Source.of(table), f"{rel.foreign_table}_{depth}", depth=depth)
        lateral = f"{parent.source.name}_{item.alias or item.name}_{depth}"
        embed = Embed(child, rel, item.name, item.alias, item.join, item.spread, lateral,
                      empty=not item.children)
        self._add_items(child, item.children)
        if not item.children:
            child.select = []
        return embed

    # --- names --------------------------------------------------------------------------------------------------
    def check_field(self, node: Node, fld: Field) -> None:
        """A field must be a column or a computed field of the node's relation (`*` is every column)."""
        if fld.name == "*":
            return
        if fld.name in node.source.columns:
            return
        if self.catalog.computed_field(node.source.name, fld.name, node.source.schema) is not None:
            return
        raise column_not_found(node.alias, fld.name)

    def is_legacy_count(self, node: Node, fld: Field) -> bool:
        return fld.name == "count" and not fld.json_path and fld.name not in node.source.columns and \
            self.catalog.computed_field(node.source.name, fld.name, node.source.schema) is None

    def is_computed(self, node: Node, name: str) -> bool:
        return name not in node.source.columns and \
            self.catalog.computed_field(node.source.name, name, node.source.schema) is not None

    def null_embed_filter(self, node: Node, condition: Condition) -> NullEmbedFilter | None:
        """`rel=is.null`/`rel=not.is.null` on an embed of this node; another operator on an embed is PGRST120."""
        if condition.field.json_path or condition.field.name in node.source.columns:
            return None
        embed = node.embed_named(condition.field.name)
        if embed is None:
            return None
        if condition.operator == "is" and condition.value == "null":
            return NullEmbedFilter(embed, condition.negated)
        raise RequestError(400, "PGRST120", f"Bad operator on the '{condition.field.name}' embedded resource",
                           details="Only is null or not is null filters are allowed on embedded resources")

    def related_order(self, node: Node, item: OrderItem) -> Embed:
        assert item.relation is not None
        embed = node.embed_named(item.relation)
        if embed is None:
            raise RequestError(400, "PGRST108", f"'{item.relation}' is not an embedded resource in this request",
                               hint=f"Verify that '{item.relation}' is included in the 'select' query parameter.")
        if not embed.to_one:
            raise RequestError(400, "PGRST118", f"A related order on '{embed.output_name}' is not possible",
                               details=f"'{node.source.name}' and '{embed.output_name}' do not form a "
                                       f"many-to-one or one-to-one relationship")
        return embed
