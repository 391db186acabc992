"""PostgREST's URL grammar, parsed into plain data. Pure logic: nothing here touches the database, so a parse error
can never have changed anything.

The grammar follows PostgREST (`src/library/PostgREST/ApiRequest/QueryParams.hs`):

    select   := item ("," item)*
    item     := "..." name embed? "(" select? ")"                 -- spread
              | [alias ":"] name embed? "(" select? ")"           -- embedded resource
              | "*" | [alias ":"] "count()" ["::" type]
              | [alias ":"] field ["::" type] ["." agg "()" ["::" type]]
    embed    := ("!" ("inner" | "left" | hint)){0,2}
    field    := name (("->" | "->>") (key | index))*
    filter   := [path "."] field "=" ["not."] op "." value      -- path: embedded resources, dot-separated
    op       := eq neq gt gte lt lte like ilike match imatch ["(any)"|"(all)"] | is | isdistinct | in
              | cs cd ov sl sr nxl nxr adj | fts plfts phfts wfts ["(" language ")"]
    logic    := [path "."] ["not."] ("and" | "or") "=(" tree ("," tree)* ")"
    order    := [path "."] "order=" term ("," term)*,  term := field | name "(" field ")"  [.asc|.desc] [.nullsfirst|.nullslast]
    limit, offset := [path "."] ("limit" | "offset") "=" digits
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_IN_VALUES = 1000
MAX_CONDITIONS = 100
MAX_DEPTH = 8
MAX_SELECT_ITEMS = 500
MAX_EMBED_DEPTH = 8
MAX_ORDER_TERMS = 16

QUANT_OPERATORS = ("eq", "gte", "gt", "lte", "lt", "like", "ilike", "match", "imatch")
SIMPLE_OPERATORS = ("neq", "cs", "cd", "ov", "sl", "sr", "nxr", "nxl", "adj")
FTS_OPERATORS = ("fts", "plfts", "phfts", "wfts")
AGGREGATES = ("sum", "avg", "count", "max", "min")
IS_VALUES = ("null", "not_null", "true", "false", "unknown")
# Query parameters that are never filters; `order`, `limit`, `offset`, `and`, `or` are reserved at every embed level.
RESERVED = frozenset({"select", "columns", "on_conflict", "apikey"})
RESERVED_EMBEDDABLE = frozenset({"order", "limit", "offset", "and", "or"})


class GrammarError(ValueError):
    """The query string is not in the grammar (→ 400 PGRST100)."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


# --- the parsed shapes ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JsonStep:
    arrow: str  # "->" (json) or "->>" (text)
    key: str | int  # an int is an array index

    @property
    def as_text(self) -> bool:
        return self.arrow == "->>"


@dataclass(frozen=True)
class Field:
    name: str
    json_path: tuple[JsonStep, ...] = ()

    @property
    def output_name(self) -> str:
        """The key PostgREST gives an unaliased field: the last JSON key (or the column name)."""
        for step in reversed(self.json_path):
            if isinstance(step.key, str):
                return step.key
        return self.name


@dataclass(frozen=True)
class SelectField:
    field: Field
    cast: str | None = None
    alias: str | None = None
    aggregate: str | None = None
    aggregate_cast: str | None = None

    @property
    def is_star(self) -> bool:
        return self.field.name == "*" and self.aggregate is None

    @property
    def output_name(self) -> str:
        if self.alias:
            return self.alias
        if self.aggregate:
            return self.aggregate
        return self.field.output_name


@dataclass(frozen=True)
class SelectRelation:
    name: str
    alias: str | None = None
    hint: str | None = None
    join: str | None = None  # "inner" | "left" | None (left)
    spread: bool = False
    children: tuple[SelectField | SelectRelation, ...] = ()

    @property
    def output_name(self) -> str:
        return self.alias or self.name


SelectItem = SelectField | SelectRelation


@dataclass(frozen=True)
class Operation:
    """One operator and its operand, as written after `[not.]`."""

    operator: str  # a quant or simple operator, "is", "isdistinct", "in" or an fts operator
    value: str | tuple[str, ...]
    quantifier: str | None = None  # "any" | "all" (quant operators only)
    language: str | None = None  # fts operators only


@dataclass(frozen=True)
class Condition:
    field: Field
    operation: Operation
    negated: bool = False

    @property
    def column(self) -> str:
        return self.field.name

    @property
    def operator(self) -> str:
        return self.operation.operator

    @property
    def value(self) -> str | tuple[str, ...]:
        return self.operation.value


@dataclass(frozen=True)
class Logic:
    operator: str  # and | or
    children: tuple[Condition | Logic, ...]
    negated: bool = False


@dataclass(frozen=True)
class OrderItem:
    field: Field
    descending: bool = False
    nulls: str | None = None  # first | last | None (PostgreSQL's default for the direction)
    relation: str | None = None  # `order=rel(col)`: a column of a to-one embed

    @property
    def column(self) -> str:
        return self.field.name


EmbedPath = tuple[str, ...]


@dataclass
class Counter:
    conditions: int = 0

    def add(self) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise GrammarError(f"too many filters (at most {MAX_CONDITIONS})")


@dataclass
class Filters:
    """Every filter of a request, ANDed together per embed level (`()` is the root)."""

    items: list[Condition | Logic] = field(default_factory=list)
    embedded: dict[EmbedPath, list[Condition | Logic]] = field(default_factory=dict)
    counter: Counter = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return bool(self.items)

    def at(self, path: EmbedPath) -> list[Condition | Logic]:
        return self.items if not path else self.embedded.setdefault(path, [])

    def add(self, path: EmbedPath, node: Condition | Logic) -> None:
        self.at(path).append(node)


@dataclass
class Query:
    """The reserved parameters of a read, per embed level."""

    select: list[SelectItem]
    filters: Filters
    order: dict[EmbedPath, list[OrderItem]] = field(default_factory=dict)
    limits: dict[EmbedPath, int] = field(default_factory=dict)
    offsets: dict[EmbedPath, int] = field(default_factory=dict)


# --- the parser -------------------------------------------------------------------------------------------------

class _Parser:
    """A small recursive-descent parser over one parameter value; errors name the column like PostgREST's."""

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.pos = 0
        self.what = what

    # position and errors
    def fail(self, expecting: str) -> GrammarError:
        found = "end of input" if self.pos >= len(self.text) else repr(self.text[self.pos])
        return GrammarError(f'"failed to parse {self.what} ({self.text})" (line 1, column {self.pos + 1})',
                            f"unexpected {found} expecting {expecting}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self, literal: str) -> bool:
        return self.text.startswith(literal, self.pos)

    def take(self, literal: str) -> bool:
        if self.peek(literal):
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: str) -> None:
        if not self.take(literal):
            raise self.fail(f'"{literal}"')

    def spaces(self) -> None:
        while not self.at_end() and self.text[self.pos] in " \t":
            self.pos += 1

    # names
    def quoted(self) -> str:
        """`"..."` with `\\` escaping any character."""
        self.expect('"')
        out = []
        while True:
            if self.at_end():
                raise self.fail('"\\"" (an unterminated quote)')
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                if self.at_end():
                    raise self.fail("an escaped character")
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                return "".join(out)
            else:
                out.append(char)

    def _identifier(self) -> str:
        start = self.pos
        while not self.at_end() and (self.text[self.pos].isalnum() or self.text[self.pos] in "_ $"):
            self.pos += 1
        return self.text[start:self.pos]

    def name(self) -> str:
        """A field or relation name: a quoted name, or identifiers joined by `-` (but not `->`)."""
        if self.peek('"'):
            return self.quoted()
        start = self.pos
        parts = [self._identifier()]
        if not parts[0]:
            raise self.fail("field name (* or [a..z0..9_$])")
        while self.peek("-") and not self.peek("->"):
            self.pos += 1
            part = self._identifier()
            if not part:
                self.pos = start
                raise self.fail("field name (* or [a..z0..9_$])")
            parts.append(part)
        return "-".join(part.strip() for part in parts)

    def json_path(self, stops: str = "") -> tuple[JsonStep, ...]:
        steps = []
        while self.peek("->"):
            arrow = "->>" if self.take("->>") else (self.take("->") and "->")
            steps.append(JsonStep(arrow, self._json_operand(stops)))
        return tuple(steps)

    def _json_operand(self, stops: str) -> str | int:
        match = re.compile(r"-?\d+").match(self.text, self.pos)
        if match:
            end = match.end()
            rest = self.text[end:]
            if not rest or rest.startswith(("->", "::", ".", ",")) or (stops and rest[0] in stops):
                self.pos = end
                return int(match.group(0))
        if self.peek('"'):
            return self.quoted()
        start = self.pos
        while not self.at_end() and self.text[self.pos] not in "(-:.,>)":
            self.pos += 1
        while self.peek("-") and not self.peek("->"):
            self.pos += 1
            while not self.at_end() and self.text[self.pos] not in "(-:.,>)":
                self.pos += 1
        key = self.text[start:self.pos].strip()
        if not key:
            raise self.fail("a JSON key or index")
        return key

    def field(self, stops: str = "") -> Field:
        self.spaces()
        name = self.name()
        path = self.json_path(stops)
        self.spaces()
        return Field(name, path)

    def type_name(self) -> str:
        start = self.pos
        while not self.at_end() and (self.text[self.pos].isalnum() or self.text[self.pos] in "_ $[]"):
            self.pos += 1
        cast = self.text[start:self.pos].strip()
        if not cast:
            raise self.fail("a type name")
        return cast

    def alias(self) -> str | None:
        """`name:` (not `name::`) before a field or relation; the position is restored when there is none."""
        start = self.pos
        try:
            name = self.name()
        except GrammarError:
            self.pos = start
            return None
        if self.peek(":") and not self.peek("::"):
            self.pos += 1
            return name
        self.pos = start
        return None


# --- select -----------------------------------------------------------------------------------------------------

def parse_select(text: str | None) -> list[SelectItem]:
    """`select=` → a forest of fields and embedded resources (`*` when absent or empty)."""
    if text is None or text.strip() == "":
        return [SelectField(Field("*"))]
    parser = _Parser(text, "select parameter")
    items = _select_forest(parser, depth=0, top=True)
    if not parser.at_end():
        raise parser.fail('",", ")" or end of input')
    return items


def _select_forest(parser: _Parser, depth: int, top: bool = False) -> list[SelectItem]:
    if depth > MAX_EMBED_DEPTH:
        raise GrammarError(f"embedded resources nest at most {MAX_EMBED_DEPTH} levels")
    items: list[SelectItem] = []
    parser.spaces()
    if parser.at_end() or parser.peek(")"):
        if top:
            raise parser.fail("field name (* or [a..z0..9_$])")
        return items
    while True:
        items.append(_select_item(parser, depth))
        if len(items) > MAX_SELECT_ITEMS:
            raise GrammarError(f"select takes at most {MAX_SELECT_ITEMS} items")
        parser.spaces()
        if not parser.take(","):
            return items
        parser.spaces()


def _embed_params(parser: _Parser) -> tuple[str | None, str | None]:
    hint = join = None
    for _ in range(2):
        if not parser.take("!"):
            break
        if parser.take("inner"):
            join = "inner"
        elif parser.take("left"):
            join = "left"
        else:
            hint = parser.name()
    return hint, join


def _select_item(parser: _Parser, depth: int) -> SelectItem:
    start = parser.pos
    if parser.take("..."):
        name = parser.name()
        hint, join = _embed_params(parser)
        if not parser.peek("("):
            raise parser.fail('"(" after a spread relation')
        return SelectRelation(name, None, hint, join, True, _children(parser, depth))
    if parser.take("*"):
        parser.spaces()
        if parser.at_end() or parser.peek(",") or parser.peek(")"):
            return SelectField(Field("*"))
        raise parser.fail('",", ")" or end of input')
    alias = parser.alias()
    after_alias = parser.pos
    if parser.peek("count()"):
        parser.pos += len("count()")
        cast = parser.type_name() if parser.take("::") else None
        _end_of_field(parser)
        return SelectField(Field("*"), None, alias, "count", cast)
    if parser.peek("..."):
        raise parser.fail("a field or relation name (a spread cannot be aliased)")
    name = parser.name()
    if parser.peek("!") or parser.peek("("):
        if name == "count" and not parser.peek("!"):
            parser.pos = start
        else:
            hint, join = _embed_params(parser)
            if not parser.peek("("):
                raise parser.fail('"(" after an embedded resource')
            return SelectRelation(name, alias, hint, join, False, _children(parser, depth))
    parser.pos = after_alias
    fld = parser.field()
    if fld.name == "count" and not fld.json_path and parser.peek("("):
        raise parser.fail('"," or end of input')
    cast = parser.type_name() if parser.take("::") else None
    aggregate = aggregate_cast = None
    for candidate in AGGREGATES:
        if parser.peek(f".{candidate}()"):
            parser.pos += len(candidate) + 3
            aggregate = candidate
            aggregate_cast = parser.type_name() if parser.take("::") else None
            break
    _end_of_field(parser)
    return SelectField(fld, cast, alias, aggregate, aggregate_cast)


def _end_of_field(parser: _Parser) -> None:
    parser.spaces()
    if not (parser.at_end() or parser.peek(",") or parser.peek(")")):
        raise parser.fail('"->", "::", ".", ",", ")" or end of input')


def _children(parser: _Parser, depth: int) -> tuple[SelectItem, ...]:
    parser.expect("(")
    children = _select_forest(parser, depth + 1)
    parser.spaces()
    parser.expect(")")
    return tuple(children)


# --- filters and logic trees ------------------------------------------------------------------------------------

def _operation(parser: _Parser, in_logic: bool) -> tuple[bool, Operation]:
    negated = parser.take("not.")
    for word in ("in", "is", "isdistinct"):
        if parser.take(word + "."):
            if word == "in":
                return negated, Operation("in", _list_value(parser))
            if word == "is":
                value = _rest(parser, in_logic).lower()
                if value not in IS_VALUES:
                    raise GrammarError(f"failed to parse filter (is.{value})",
                                       "isVal: (null, not_null, true, false, unknown)")
                return negated, Operation("is", value)
            return negated, Operation("isdistinct", _single_value(parser, in_logic))
    for op in FTS_OPERATORS:
        if parser.peek(op + ".") or parser.peek(op + "("):
            parser.pos += len(op)
            language = None
            if parser.take("("):
                language = parser.type_name()
                parser.expect(")")
            parser.expect(".")
            return negated, Operation(op, _single_value(parser, in_logic), language=language)
    for op in SIMPLE_OPERATORS:
        if parser.take(op + "."):
            return negated, Operation(op, _single_value(parser, in_logic))
    for op in QUANT_OPERATORS:
        if parser.peek(op + ".") or parser.peek(op + "(any).") or parser.peek(op + "(all)."):
            parser.pos += len(op)
            quantifier = None
            if parser.take("(any)"):
                quantifier = "any"
            elif parser.take("(all)"):
                quantifier = "all"
            parser.expect(".")
            return negated, Operation(op, _single_value(parser, in_logic), quantifier)
    raise parser.fail("operator (eq, gt, ...)")


def _rest(parser: _Parser, in_logic: bool) -> str:
    if not in_logic:
        value = parser.text[parser.pos:]
        parser.pos = len(parser.text)
        return value
    start = parser.pos
    while not parser.at_end() and parser.text[parser.pos] not in ",)":
        parser.pos += 1
    return parser.text[start:parser.pos]


def _single_value(parser: _Parser, in_logic: bool) -> str:
    """A filter's operand: the rest of the parameter at the top level; inside a logic tree a quoted value, a
    `{...}` array literal (its commas are part of the value) or the text up to the next `,` or `)`."""
    if not in_logic:
        return _rest(parser, in_logic)
    start = parser.pos
    if parser.peek('"'):
        value = parser.quoted()
        if parser.at_end() or parser.text[parser.pos] in ",)":
            return value
        parser.pos = start
    if parser.peek("{"):
        end = parser.text.find("}", parser.pos)
        inner = parser.text[parser.pos + 1:end] if end >= 0 else ""
        if end >= 0 and "{" not in inner:
            parser.pos = end + 1
            return parser.text[start:parser.pos]
    return _rest(parser, in_logic)


def _list_value(parser: _Parser) -> tuple[str, ...]:
    parser.spaces()
    parser.expect("(")
    values = []
    while True:
        start = parser.pos
        value = None
        if parser.peek('"'):
            value = parser.quoted()
            if not (parser.at_end() or parser.text[parser.pos] in ",)"):
                parser.pos, value = start, None
        if value is None:
            while not parser.at_end() and parser.text[parser.pos] not in ",)":
                parser.pos += 1
            value = parser.text[start:parser.pos]
        values.append(value)
        if len(values) > MAX_IN_VALUES:
            raise GrammarError(f"too many values in `in` (at most {MAX_IN_VALUES})")
        if not parser.take(","):
            break
    parser.spaces()
    parser.expect(")")
    parser.spaces()
    if not parser.at_end() and not parser.peek(",") and not parser.peek(")"):
        raise parser.fail('"," or ")"')
    return tuple(values)


def parse_in_list(value: str) -> list[str]:
    """`(1,2,"a,b")` → its values: PostgREST's `in` list, also used by realtime binding filters."""
    if not (value.startswith("(") and value.endswith(")")):
        raise GrammarError("`in` needs a parenthesised list, e.g. in.(1,2,\"a,b\")", value)
    if value[1:-1].strip() == "":
        return []
    parser = _Parser(value, "filter")
    values = list(_list_value(parser))
    if not parser.at_end():
        raise parser.fail("end of input")
    return values


def parse_operation(field_: Field, text: str) -> Condition:
    """`[not.]op.value` for a field, at the top level (the value is the rest of the parameter, taken literally)."""
    parser = _Parser(text, "filter")
    negated, operation = _operation(parser, in_logic=False)
    return Condition(field_, operation, negated)


def _logic_tree(parser: _Parser, counter: Counter, depth: int) -> Condition | Logic:
    if depth > MAX_DEPTH:
        raise GrammarError(f"logic trees nest at most {MAX_DEPTH} levels")
    parser.spaces()
    start = parser.pos
    negated = parser.take("not.")
    for word in ("and", "or"):
        if parser.peek(word + "("):
            parser.pos += len(word)
            return _logic_body(parser, word, negated, counter, depth)
    parser.pos = start
    fld = parser.field(stops=")")
    if not parser.take("."):
        raise parser.fail('delimiter (.)')
    negated, operation = _operation(parser, in_logic=True)
    counter.add()
    return Condition(fld, operation, negated)


def _logic_body(parser: _Parser, operator: str, negated: bool, counter: Counter, depth: int) -> Logic:
    parser.spaces()
    parser.expect("(")
    children = [_logic_tree(parser, counter, depth + 1)]
    parser.spaces()
    while parser.take(","):
        children.append(_logic_tree(parser, counter, depth + 1))
        parser.spaces()
    parser.expect(")")
    parser.spaces()
    return Logic(operator, tuple(children), negated)


def split_key(key: str) -> list[str]:
    """A parameter name's dot-separated parts (quoted parts may contain dots)."""
    parts, current, quoted = [], [], False
    for char in key:
        if char == '"':
            quoted = not quoted
        if char == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _tree_path(key: str) -> tuple[EmbedPath, Field]:
    """`a.b.col->x` → (("a", "b"), Field("col", ->x))."""
    parser = _Parser(key, "tree path")
    names = [parser.name()]
    while parser.take("."):
        names.append(parser.name())
    path = parser.json_path()
    if not parser.at_end():
        raise parser.fail('".", "->" or end of input')
    return tuple(names[:-1]), Field(names[-1], path)


def parse_filter(filters: Filters, key: str, value: str) -> None:
    """Add one query parameter (a filter or a logic tree, at the root or an embed path) to `filters`."""
    parts = split_key(key)
    last = parts[-1]
    if last in ("and", "or"):
        negated = len(parts) > 1 and parts[-2] == "not"
        path = tuple(p.strip('"') for p in parts[:-2 if negated else -1] if p != "not")
        parser = _Parser(value.strip(), "logic tree")
        node = _logic_body(parser, last, negated, filters.counter, 1)
        if not parser.at_end():
            raise parser.fail("end of input")
        filters.add(path, node)
        return
    path, fld = _tree_path(key)
    filters.counter.add()
    filters.add(path, parse_operation(fld, value))


# --- order, columns, ranges -------------------------------------------------------------------------------------

def parse_order(text: str | None) -> list[OrderItem]:
    if text is None or text.strip() == "":
        return []
    parser = _Parser(text, "order")
    items = []
    while True:
        parser.spaces()
        relation = None
        start = parser.pos
        name = parser.name()
        if parser.take("("):
            relation = name
            fld = parser.field(stops=")")
            parser.expect(")")
        else:
            parser.pos = start
            fld = parser.field()
        descending, nulls = False, None
        if parser.take(".asc"):
            descending = False
        elif parser.take(".desc"):
            descending = True
        if parser.take(".nullsfirst"):
            nulls = "first"
        elif parser.take(".nullslast"):
            nulls = "last"
        parser.spaces()
        if not (parser.at_end() or parser.peek(",")):
            raise parser.fail('"asc", "desc", "nullsfirst", "nullslast", "," or end of input')
        items.append(OrderItem(fld, descending, nulls, relation))
        if len(items) > MAX_ORDER_TERMS:
            raise GrammarError(f"order takes at most {MAX_ORDER_TERMS} columns")
        if not parser.take(","):
            return items


def parse_columns(text: str) -> list[str]:
    """`columns="a","b"` or `columns=a,b` (the insert column list supabase-js and -py send)."""
    parser = _Parser(text, "columns parameter")
    columns = []
    while True:
        parser.spaces()
        columns.append(parser.name())
        parser.spaces()
        if not parser.take(","):
            break
    if not parser.at_end():
        raise parser.fail('"," or end of input')
    return columns


def parse_non_negative(name: str, text: str | None) -> int | None:
    """A `limit`/`offset` value: ASCII digits only (`str.isdigit` would admit `²` and `①`)."""
    if text is None or text == "":
        return None
    if not re.fullmatch(r"[0-9]{1,12}", text):
        raise GrammarError(f"`{name}` must be a non-negative integer", text)
    return int(text)


def is_reserved(key: str) -> bool:
    return key in RESERVED or split_key(key)[-1] in RESERVED_EMBEDDABLE - {"and", "or"}


def parse_query(params: Iterable[tuple[str, str]], *, select: str | None, filters_only: bool = False) -> Query:
    """Every parameter of a read: `select`, filters and logic trees, `order`/`limit`/`offset` at each level."""
    query = Query(select=parse_select(select), filters=Filters())
    for key, value in params:
        if key in RESERVED:
            continue
        parts = split_key(key)
        last = parts[-1]
        if last in ("order", "limit", "offset"):
            path = tuple(p.strip('"') for p in parts[:-1])
            if filters_only and path == ():
                continue
            if last == "order":
                query.order[path] = parse_order(value)
            else:
                number = parse_non_negative(".".join([*parts[:-1], last]) if path else last, value)
                if number is not None:
                    (query.limits if last == "limit" else query.offsets)[path] = number
            continue
        parse_filter(query.filters, key, value)
    return query
