"""Request parsing for /rest/v1: the `Prefer` header as a type, the `Range` header, `Accept` media types, the
profile headers, the JSON body and the URL grammar's errors. Views read these typed values; no view compares a
header as a string.

`Prefer` follows PostgREST (`src/library/PostgREST/ApiRequest/Preferences.hs`): comma-separated values in one or
more headers, the first value of each preference wins, unknown values are ignored.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from flask import Request, request

from api.rest.errors import PostgrestError, bad_request
from db.rest import grammar
from db.rest.catalog import EXPOSED_SCHEMA

Count = Literal["exact", "planned", "estimated"]
Return = Literal["representation", "minimal", "headers-only"]
Resolution = Literal["merge-duplicates", "ignore-duplicates"]
Missing = Literal["default", "null"]
Handling = Literal["strict", "lenient"]

OBJECT_TYPE = "application/vnd.pgrst.object+json"
# Query parameters that are not filters.
RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict", "apikey"})

_CHOICES: dict[str, tuple[str, ...]] = {
    "count": ("exact", "planned", "estimated"),
    "return": ("representation", "minimal", "headers-only"),
    "resolution": ("merge-duplicates", "ignore-duplicates"),
    "missing": ("default", "null"),
    "handling": ("strict", "lenient"),
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

    @property
    def wants_count(self) -> bool:
        """A total is computed for every count kind (`planned`/`estimated` are answered exactly)."""
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

    def applied(self, *, read: bool) -> str | None:
        """The `Preference-Applied` value: the preferences this request honoured, in PostgREST's order."""
        if read:
            return "count=exact" if self.wants_count else None
        values = [f"resolution={self.resolution}" if self.resolution else None,
                  f"missing={self.missing}" if self.missing else None,
                  f"return={self.return_}" if self.return_ else None,
                  f"count={self.count}" if self.count else None,
                  f"handling={self.handling}" if self.handling else None,
                  f"max-affected={self.max_affected}" if self.strict and self.max_affected is not None else None]
        return ", ".join(value for value in values if value) or None


def parse_preferences(headers: list[str]) -> Preferences:
    """Every `Prefer` header → `Preferences` (the first value of a preference wins, as in PostgREST)."""
    found: dict[str, Any] = {}
    for header in headers:
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            key, value = key.strip().lower(), value.strip()
            if key in found:
                continue
            if key in _CHOICES and value in _CHOICES[key]:
                found[key] = value
            elif key == "max-affected" and value.isdigit():
                found[key] = int(value)
    return Preferences(count=found.get("count"), return_=found.get("return"), resolution=found.get("resolution"),
                       missing=found.get("missing"), handling=found.get("handling"),
                       max_affected=found.get("max-affected"))


def preferences() -> Preferences:
    return parse_preferences(request.headers.getlist("Prefer"))


def wants_object(req: Request | None = None) -> bool:
    """`Accept: application/vnd.pgrst.object+json` → one object; JSON or anything-goes → an array; else 406."""
    accept = (req or request).headers.get("Accept", "*/*")
    media = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if OBJECT_TYPE in media:
        return True
    if any(m in ("*/*", "application/*", "application/json", "application/vnd.pgrst.array+json", "")
           for m in media):
        return False
    raise PostgrestError(406, "PGRST107", f"None of these media types are available: {accept}")


def check_profile() -> None:
    """`Accept-Profile` (reads) / `Content-Profile` (writes) may name only the exposed schema."""
    header = "Accept-Profile" if request.method in ("GET", "HEAD") else "Content-Profile"
    profile = request.headers.get(header)
    if profile is not None and profile != EXPOSED_SCHEMA:
        raise PostgrestError(406, "PGRST106", f"The schema must be one of the following: {EXPOSED_SCHEMA}",
                             details=f"{header}: {profile}")


def parse_range_header(value: str | None) -> tuple[int, int | None]:
    """`Range: <from>-[<to>]` → (offset, limit or None); no header → (0, None)."""
    if not value:
        return 0, None
    start, dash, end = value.strip().removeprefix("items=").partition("-")
    if not dash or not start.isdigit() or (end and not end.isdigit()) or (end and int(end) < int(start)):
        raise PostgrestError(416, "PGRST103", "Requested range not satisfiable", details=f"Range: {value}")
    return int(start), (int(end) - int(start) + 1) if end else None


T = TypeVar("T")


def parse(make: Callable[[], T]) -> T:
    """Run a grammar parser; its error is PostgREST's 400 PGRST100."""
    try:
        return make()
    except grammar.GrammarError as exc:
        raise bad_request(exc.message, details=exc.details) from exc


def parse_filters() -> grammar.Filters:
    filters = grammar.Filters()
    for key, value in request.args.items(multi=True):
        if key not in RESERVED:
            parse(lambda k=key, v=value: grammar.parse_filter(filters, k, v))
    return filters


def parse_representation(prefs: Preferences) -> list[grammar.SelectItem] | None:
    """The `select` a write answers with under `return=representation`; None means no body."""
    if prefs.representation:
        return parse(lambda: grammar.parse_select(request.args.get("select")))
    return None


def read_body() -> Any:
    """The JSON body, or None when there is none; invalid JSON is PostgREST's 400 PGRST102."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PostgrestError(400, "PGRST102", "Empty or invalid json", details=str(exc)[:200]) from exc
