"""PostgREST's URL grammar (the subset the Supabase clients send), parsed into plain data. Pure logic: nothing here
touches the database, so a parse error can never have changed anything.

    select=*|col,alias:col,"quoted col"
    <col>=[not.]<op>.<value>        op: eq neq gt gte lt lte like ilike is in cs cd ov
    or=(<cond>,<cond>,...)          also and=, not.or=, not.and=; <cond> = col.[not.]op.value | [not.]or(...) | [not.]and(...)
    order=col[.asc|.desc][.nullsfirst|.nullslast],...
"""
from __future__ import annotations

from dataclasses import dataclass, field

OPERATORS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "is", "in", "cs", "cd", "ov"})
IS_VALUES = frozenset({"null", "not_null", "true", "false", "unknown"})
LOGIC_KEYS = {"or": ("or", False), "and": ("and", False), "not.or": ("or", True), "not.and": ("and", True)}
MAX_IN_VALUES = 1000
MAX_CONDITIONS = 100
MAX_DEPTH = 8


class GrammarError(ValueError):
    """The query string is not in the supported grammar (→ 400 PGRST100)."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


@dataclass(frozen=True)
class SelectItem:
    column: str  # "*" for every column
    alias: str | None = None


@dataclass(frozen=True)
class Condition:
    column: str
    operator: str
    value: str | list[str]
    negated: bool = False


@dataclass(frozen=True)
class Logic:
    operator: str  # and | or
    children: tuple[Condition | Logic, ...]
    negated: bool = False


@dataclass(frozen=True)
class OrderItem:
    column: str
    descending: bool = False
    nulls: str | None = None  # first | last | None (PostgreSQL's default for the direction)


@dataclass
class Counter:
    conditions: int = 0

    def add(self) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise GrammarError(f"too many filters (at most {MAX_CONDITIONS})")


@dataclass
class Filters:
    """Every filter of a request, ANDed together."""

    items: list[Condition | Logic] = field(default_factory=list)
    counter: Counter = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return bool(self.items)


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on `separator` outside double quotes and parentheses (a `\\` escapes inside quotes)."""
    parts, current, depth, quoted, escaped = [], [], 0, False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            current.append(char)
            continue
        if char == '"':
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise GrammarError("unbalanced parentheses", text)
        elif char == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted or depth:
        raise GrammarError("unbalanced quotes or parentheses", text)
    parts.append("".join(current))
    return parts


def unquote(token: str) -> str:
    """`"a \\"b\\""` → `a "b"`; an unquoted token is returned as is."""
    if len(token) >= 2 and token[0] == '"' and token[-1] == '"':
        body, out, escaped = token[1:-1], [], False
        for char in body:
            if escaped:
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            else:
                out.append(char)
        return "".join(out)
    if '"' in token:
        raise GrammarError("misplaced double quote", token)
    return token


def _strip_outside_quotes(text: str) -> str:
    out, quoted, escaped = [], False, False
    for char in text:
        if quoted:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
            out.append(char)
        elif not char.isspace():
            out.append(char)
    return "".join(out)


def parse_select(text: str | None) -> list[SelectItem]:
    if text is None or text.strip() == "":
        return [SelectItem("*")]
    items = []
    for raw in split_top_level(_strip_outside_quotes(text)):
        if raw == "":
            raise GrammarError("failed to parse select parameter", text)
        if "(" in raw or ")" in raw:
            raise GrammarError("embedded resources and aggregates are not supported", raw)
        if raw.startswith("..."):
            raise GrammarError("spread embeds are not supported", raw)
        if "::" in raw:
            raise GrammarError("casts in select are not supported", raw)
        if "->" in raw:
            raise GrammarError("JSON paths in select are not supported", raw)
        alias = None
        if ":" in raw and not raw.startswith('"'):
            alias, raw = raw.split(":", 1)
            alias = unquote(alias)
            if not alias or len(alias) > 63:
                raise GrammarError("invalid alias in select", alias)
        column = unquote(raw)
        if column == "*" and alias:
            raise GrammarError("`*` cannot be renamed", text)
        items.append(SelectItem(column, alias))
    return items


def parse_in_list(value: str) -> list[str]:
    """`(1,2,"a,b")` → its values: PostgREST's `in` list, also used by realtime binding filters."""
    if not (value.startswith("(") and value.endswith(")")):
        raise GrammarError("`in` needs a parenthesised list, e.g. in.(1,2,\"a,b\")", value)
    inner = value[1:-1]
    if inner.strip() == "":
        return []
    values = [unquote(part) for part in split_top_level(inner)]
    if len(values) > MAX_IN_VALUES:
        raise GrammarError(f"too many values in `in` (at most {MAX_IN_VALUES})")
    return values


def parse_operation(column: str, text: str, *, in_logic: bool = False) -> Condition:
    """`[not.]op.value` for `column`."""
    negated = False
    if text.startswith("not."):
        negated, text = True, text[4:]
    operator, dot, value = text.partition(".")
    if not dot:
        raise GrammarError(f"failed to parse filter ({text})", "expected <operator>.<value>, e.g. eq.5")
    if operator not in OPERATORS:
        raise GrammarError(f"unknown or unsupported operator `{operator}`",
                           f"supported: {', '.join(sorted(OPERATORS))}")
    parsed: str | list[str]
    if operator == "in":
        parsed = parse_in_list(value)
    elif operator == "is":
        if value.lower() not in IS_VALUES:
            raise GrammarError(f"failed to parse filter (is.{value})", "is accepts null, not_null, true, false, unknown")
        parsed = value.lower()
    else:
        parsed = unquote(value) if in_logic else value
    return Condition(column, operator, parsed, negated)


def _parse_logic_body(operator: str, negated: bool, body: str, counter: Counter, depth: int) -> Logic:
    if depth > MAX_DEPTH:
        raise GrammarError(f"logic trees nest at most {MAX_DEPTH} levels")
    if not (body.startswith("(") and body.endswith(")")):
        raise GrammarError(f"failed to parse logic tree ({body})", "expected or=(a.eq.1,b.eq.2)")
    children: list[Condition | Logic] = []
    for part in (p.strip() for p in split_top_level(body[1:-1])):
        if part == "":
            raise GrammarError(f"failed to parse logic tree ({body})", "empty condition")
        child_negated, rest = (True, part[4:]) if part.startswith("not.") else (False, part)
        for word in ("or", "and"):
            if rest.startswith(word + "("):
                children.append(_parse_logic_body(word, child_negated, rest[len(word):], counter, depth + 1))
                break
        else:
            if part.startswith('"'):
                end = part.find('"', 1)
                if end < 0 or part[end + 1:end + 2] != ".":
                    raise GrammarError(f"failed to parse logic tree ({body})", part)
                column, operation = part[1:end], part[end + 2:]
            else:
                column, dot, operation = part.partition(".")
                if not dot:
                    raise GrammarError(f"failed to parse logic tree ({body})", part)
            counter.add()
            children.append(parse_operation(column, operation, in_logic=True))
    return Logic(operator, tuple(children), negated)


def parse_filter(filters: Filters, key: str, value: str) -> None:
    """Add one query parameter (already known not to be reserved) to `filters`."""
    if key in LOGIC_KEYS:
        operator, negated = LOGIC_KEYS[key]
        filters.items.append(_parse_logic_body(operator, negated, value.strip(), filters.counter, 1))
        return
    if "->" in key or "." in key or "(" in key:
        raise GrammarError(f"unsupported filter key `{key}`",
                           "JSON paths and embedded-resource filters are not supported")
    filters.counter.add()
    filters.items.append(parse_operation(key, value))


def parse_order(text: str | None) -> list[OrderItem]:
    if text is None or text.strip() == "":
        return []
    items = []
    for raw in split_top_level(_strip_outside_quotes(text)):
        if raw.startswith('"'):
            end = raw.find('"', 1)
            if end < 0:
                raise GrammarError("failed to parse order", raw)
            column, rest = raw[1:end], raw[end + 1:]
            if rest and not rest.startswith("."):
                raise GrammarError("failed to parse order", raw)
            modifiers = rest[1:].split(".") if rest else []
        else:
            column, *modifiers = raw.split(".")
        if not column or "(" in column or "->" in column:
            raise GrammarError("failed to parse order", raw)
        descending, nulls = False, None
        if modifiers and modifiers[0] in ("asc", "desc"):
            descending = modifiers.pop(0) == "desc"
        if modifiers and modifiers[0] in ("nullsfirst", "nullslast"):
            nulls = "first" if modifiers.pop(0) == "nullsfirst" else "last"
        if modifiers:
            raise GrammarError(f"failed to parse order ({raw})",
                               "expected col[.asc|.desc][.nullsfirst|.nullslast]")
        items.append(OrderItem(column, descending, nulls))
    if len(items) > 16:
        raise GrammarError("order takes at most 16 columns")
    return items


def parse_columns(text: str) -> list[str]:
    """`columns="a","b"` or `columns=a,b` (the insert column list supabase-js and -py send)."""
    columns = [unquote(part) for part in split_top_level(_strip_outside_quotes(text))]
    if not columns or any(c == "" for c in columns):
        raise GrammarError("failed to parse columns parameter", text)
    return columns


def parse_non_negative(name: str, text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 12:
        raise GrammarError(f"`{name}` must be a non-negative integer", text)
    return int(text)
