"""Request parsing for /rest/v1: the `Prefer` header as a type, the `Range` header, `Accept` media types, the
profile headers, the JSON body and the URL grammar's errors. Views read these typed values; no view compares a
header as a string.

`Prefer` follows PostgREST (`src/library/PostgREST/ApiRequest/Preferences.hs`): comma-separated values in one or
more headers, the first value of each preference wins, unknown values are ignored.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from flask import Request, g, request

from api.http import JsonInputError, parse_json
from api.rest.errors import PostgrestError, bad_request
from api.services import services
from db.rest import grammar

Count = Literal["exact", "planned", "estimated"]
Return = Literal["representation", "minimal", "headers-only"]
Resolution = Literal["merge-duplicates", "ignore-duplicates"]
Missing = Literal["default", "null"]
Handling = Literal["strict", "lenient"]
Transaction = Literal["commit", "rollback"]
MediaKind = Literal["array", "object", "csv"]

OBJECT_TYPE = "application/vnd.pgrst.object+json"
ARRAY_TYPE = "application/vnd.pgrst.array+json"
CSV_TYPE = "text/csv"

_CHOICES: dict[str, tuple[str, ...]] = {
    "count": ("exact", "planned", "estimated"),
    "return": ("representation", "minimal", "headers-only"),
    "resolution": ("merge-duplicates", "ignore-duplicates"),
    "missing": ("default", "null"),
    "handling": ("strict", "lenient"),
    "tx": ("commit", "rollback"),
}


@dataclass(frozen=True)
class Preferences:
    """What the client asked for in `Prefer`; `None` where it said nothing (or nothing this server knows)."""

    count: Count | None = None
    return_: Return | None = None
    resolution: Resolution | None = None
    missing: Missing | None = None
    handling: Handling | None = None
    max_affected: int | None = None
    tx: Transaction | None = None
    invalid: tuple[str, ...] = ()  # what PostgREST would not recognise (an error only with handling=strict)

    @property
    def wants_count(self) -> bool:
        """A total is computed for every count kind (`planned` from the planner's estimate)."""
        return self.count is not None

    @property
    def representation(self) -> bool:
        return self.return_ == "representation"

    @property
    def missing_default(self) -> bool:
        return self.missing == "default"

    @property
    def strict(self) -> bool:
        return self.handling == "strict"

    @property
    def rollback(self) -> bool:
        """`tx=rollback`: segbase runs PostgREST's `db-tx-end = commit-allow-override` (docs/REST.md)."""
        return self.tx == "rollback"

    def applied(self, *, read: bool) -> str | None:
        """The `Preference-Applied` value: the preferences this request honoured, in PostgREST's order."""
        if read:
            values = [f"count={self.count}" if self.count else None, f"tx={self.tx}" if self.tx else None]
            return ", ".join(value for value in values if value) or None
        values = [f"resolution={self.resolution}" if self.resolution else None,
                  f"missing={self.missing}" if self.missing else None,
                  f"return={self.return_}" if self.return_ else None,
                  f"count={self.count}" if self.count else None,
                  f"tx={self.tx}" if self.tx else None,
                  f"handling={self.handling}" if self.handling else None,
                  f"max-affected={self.max_affected}" if self.strict and self.max_affected is not None else None]
        return ", ".join(value for value in values if value) or None


def parse_preferences(headers: list[str]) -> Preferences:
    """Every `Prefer` header → `Preferences` (the first value of a preference wins, as in PostgREST)."""
    found: dict[str, Any] = {}
    invalid: list[str] = []
    for header in headers:
        for part in header.split(","):
            raw = part.strip()
            key, _, value = raw.partition("=")
            key, value = key.strip().lower(), value.strip()
            if key in _CHOICES and value in _CHOICES[key]:
                found.setdefault(key, value)
            elif key == "max-affected":
                if not re.fullmatch(r"[0-9]{1,18}", value):  # ASCII digits: `²` and `①` are not numbers here
                    raise PostgrestError(400, "PGRST100", "`max-affected` must be a non-negative integer",
                                         details=f"Prefer: {raw}")
                found.setdefault(key, int(value))
            elif key == "timezone":
                continue
            elif raw:
                invalid.append(raw)
    return Preferences(count=found.get("count"), return_=found.get("return"), resolution=found.get("resolution"),
                       missing=found.get("missing"), handling=found.get("handling"),
                       max_affected=found.get("max-affected"), tx=found.get("tx"), invalid=tuple(invalid))


def preferences() -> Preferences:
    """The request's `Prefer`; with `handling=strict` an unrecognised preference is PostgREST's 400 PGRST122."""
    prefs = parse_preferences(request.headers.getlist("Prefer"))
    if prefs.strict and prefs.invalid:
        raise PostgrestError(400, "PGRST122", "Invalid preferences given with handling=strict",
                             details=f"Invalid preferences: {', '.join(prefs.invalid)}")
    return prefs


@dataclass(frozen=True)
class Media:
    """What the client accepts: a JSON array (default), one JSON object, or CSV; optionally nulls stripped."""

    kind: MediaKind = "array"
    strip_nulls: bool = False

    @property
    def singular(self) -> bool:
        return self.kind == "object"

    @property
    def content_type(self) -> str:
        if self.kind == "csv":
            return f"{CSV_TYPE}; charset=utf-8"
        if self.kind == "object":
            return f"{OBJECT_TYPE}{';nulls=stripped' if self.strip_nulls else ''}; charset=utf-8"
        if self.strip_nulls:
            return f"{ARRAY_TYPE};nulls=stripped; charset=utf-8"
        return "application/json; charset=utf-8"


def parse_accept(accept: str) -> Media:
    """The first media range of `Accept` this server produces, or PostgREST's 406 PGRST107."""
    for part in accept.split(","):
        kind, *parameters = [piece.strip().lower() for piece in part.split(";")]
        strip = "nulls=stripped" in [p.replace(" ", "") for p in parameters]
        if kind == OBJECT_TYPE:
            return Media("object", strip)
        if kind == ARRAY_TYPE:
            return Media("array", strip)
        if kind in ("*/*", "application/*", "application/json", ""):
            return Media("array")
        if kind in (CSV_TYPE, "text/*"):
            return Media("csv")
    raise PostgrestError(406, "PGRST107", f"None of these media types are available: {accept}")


def accepted_media(req: Request | None = None) -> Media:
    return parse_accept((req or request).headers.get("Accept", "*/*") or "*/*")


def wants_object(req: Request | None = None) -> bool:
    """`Accept: application/vnd.pgrst.object+json` → one object; JSON or anything-goes → an array; else 406."""
    return accepted_media(req).singular


def profile(schemas: list[str] | tuple[str, ...]) -> str:
    """The schema this request addresses: `Accept-Profile` (reads) / `Content-Profile` (writes), default the
    first exposed schema; any other is PostgREST's 406 PGRST106."""
    header = "Accept-Profile" if request.method in ("GET", "HEAD") else "Content-Profile"
    chosen = request.headers.get(header)
    if chosen is None:
        chosen = schemas[0]
    elif chosen not in schemas:
        raise PostgrestError(406, "PGRST106", f"Invalid schema: {chosen}",
                             hint=f"Only the following schemas are exposed: {', '.join(schemas)}")
    if len(schemas) > 1:
        g.rest_profile = chosen  # answered as `Content-Profile`, as PostgREST does with several schemas
    return chosen


def parse_range_header(value: str | None) -> tuple[int, int | None]:
    """`Range: <from>-[<to>]` → (offset, limit or None); no header → (0, None). ASCII digits only."""
    if not value:
        return 0, None
    match = re.fullmatch(r"(?:items=)?([0-9]{1,15})-([0-9]{1,15})?", value.strip())
    if match is None or (match.group(2) and int(match.group(2)) < int(match.group(1))):
        raise PostgrestError(416, "PGRST103", "Requested range not satisfiable", details=f"Range: {value}")
    start, end = int(match.group(1)), match.group(2)
    return start, (int(end) - start + 1) if end else None


T = TypeVar("T")


def parse(make: Callable[[], T]) -> T:
    """Run a grammar parser; its error is PostgREST's 400 PGRST100."""
    try:
        return make()
    except grammar.GrammarError as exc:
        raise bad_request(exc.message, details=exc.details) from exc


def parse_query(params: list[tuple[str, str]] | None = None) -> grammar.Query:
    """Every reserved parameter and filter of the query string."""
    items = list(request.args.items(multi=True)) if params is None else params
    return parse(lambda: grammar.parse_query(items, select=request.args.get("select")))


def read_body() -> Any:
    """The JSON body, or None when there is none; invalid JSON is PostgREST's 400 PGRST102."""
    return parse_json_body(request.get_data(cache=False))


def parse_json_body(raw: bytes) -> Any:
    """The body through the one JSON check (api/http.py), refusals in PostgREST's shape: a NUL in a string or key
    is PostgreSQL's own refusal of it (22P05, which PostgREST answers 400) with the field in `details`; anything
    else — not JSON, nested deeper than MAX_JSON_DEPTH, a lone surrogate — is PGRST102 naming the problem."""
    if not raw.strip():
        return None
    try:
        return parse_json(raw, max_depth=services().settings.max_json_depth)
    except JsonInputError as exc:
        if exc.problem == "nul_character":
            raise PostgrestError(400, "22P05", "unsupported Unicode escape sequence",
                                 details=f"{exc.field}: \\u0000 cannot be converted to text.") from exc
        raise PostgrestError(400, "PGRST102", "Empty or invalid json", details=exc.message[:200]) from exc
