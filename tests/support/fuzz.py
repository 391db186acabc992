"""Fuzzing helpers: the routes of the app's URL map, hypothesis strategies for requests and Phoenix frames, a
fingerprint of every row a request could change, and the curl line that reproduces a request."""
from __future__ import annotations

import json
import os
import re
import shlex
import string
from dataclasses import dataclass, field
from typing import Any

import psycopg
from hypothesis import strategies as st
from psycopg import sql

from schemas.settings import Settings

FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "0"))
# Examples per route and method (HTTP) and per socket (frames): small and fixed in `make test`, larger locally.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
# Shrinking a failure to its smallest form can take minutes of requests: off unless asked for (FUZZ_SHRINK=1); the
# failing request is printed either way.
FUZZ_SHRINK = os.environ.get("FUZZ_SHRINK", "") not in ("", "0")

# Schemas whose rows a refused request must leave alone (checked as a whole: later tables are included).
CHECKED_SCHEMAS = ("public", "auth", "internal", "storage", "realtime")

UNICODE_DIGITS = ["²", "①", "٣", "５", "𝟗", "Ⅻ", "৪"]
WORDS = ["id", "user_id", "name", "email", "password", "status", "task_id", "mask_url", "labels", "metadata",
         "error", "data", "refresh_token", "project_id", "source_image_url", "text_prompt", "credits", "tier",
         "select", "order", "limit", "offset", "on_conflict", "columns", "apikey", "grant_type", "scope", "job_id",
         "phone", "app_metadata", "display_name", "price", "topic", "event", "payload", "ref", "access_token"]
NASTY_TEXT = ["", " ", "\x00", "a\x00b", "\ud800", "\udfff", "\u202e", "\ufeff", "\\", "'", '"', "%", "%00", "*",
              ";", "--", "/*", "$1", "null", "NaN", "-1", "0", "1e400", "9" * 30, "²", "①", "../../etc/passwd",
              "https://evil.example\\@cdn.example/m.png", "javascript:alert(1)", "<script>", "eq.1", "in.()",
              "in.(1,2", "or=(a.eq.1", "(((((", ")"]
OPERATORS = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "is", "in", "cs", "cd", "fts", "not.eq",
             "or", "and", "match", "imatch", "ov", "sl", "sr", "nxl", "adj", "isdistinct", "zz"]


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    arguments: tuple[tuple[str, str], ...]  # (name, converter: default, path, int, uuid...)

    @property
    def id(self) -> str:
        return f"{self.method} {self.rule}"


RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def app_routes() -> list[Route]:
    """Every (rule, method) the app serves, from its URL map: a new surface is fuzzed without editing the suite."""
    from api import create_app  # here, not at import: building the app is collection-time work for this suite only

    app = create_app(Settings(_env_file=None))
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        arguments = tuple((m["name"], m["converter"] or "default") for m in RULE_ARGUMENT.finditer(rule.rule))
        for method in sorted(rule.methods or ()):
            route = Route(rule.rule, method, arguments)
            if route not in routes:
                routes.append(route)
    app.extensions["segbase"].engine.dispose()
    return routes


@dataclass
class Identities:
    """What a request can present: the real keys and a user's token, next to garbage."""

    anon_key: str
    service_key: str
    user_token: str
    webhook_key: str
    tables: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def text(max_size: int = 40) -> st.SearchStrategy[str]:
    long = st.builds(lambda char, n: char * n, st.sampled_from("xä\u0000"), st.integers(200, 6000))
    return st.one_of(st.sampled_from(NASTY_TEXT), st.sampled_from(WORDS), st.text(max_size=max_size), long)


def header_text() -> st.SearchStrategy[str]:
    """Header values: printable ASCII and beyond (sent as UTF-8 bytes), never CR/LF, tabs or edge spaces (the
    client refuses to send those)."""
    return st.one_of(st.sampled_from(["", "x", "²", "①", "a" * 9000]),
                     st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF,
                                                    exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
                             max_size=60))


def json_values(ids: list[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10 ** 40), max_value=10 ** 40),
                        st.floats(allow_nan=False, allow_infinity=False), text(), st.sampled_from(ids or ["x"]))
    return st.recursive(scalars, lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(WORDS), text(12)), children, max_size=6)), max_leaves=25)


def deep_json(depth: int) -> str:
    """JSON nested `depth` containers deep, built as text (json.dumps would recurse past Python's limit)."""
    opening = "".join('{"k":' if level % 2 else "[" for level in range(depth))
    closing = "".join("}" if level % 2 else "]" for level in reversed(range(depth)))
    return f'{opening}"leaf"{closing}'


def bodies(ids: list[str]) -> st.SearchStrategy[bytes | None]:
    """None (no body), JSON (sometimes with NULs, lone surrogates, deep nesting), or raw bytes."""
    as_json = json_values(ids).map(lambda v: json.dumps(v).encode())
    shaped = st.fixed_dictionaries({}, optional={name: json_values(ids) for name in (
        "task_id", "status", "mask_url", "labels", "metadata", "error", "email", "password", "refresh_token",
        "data", "id", "user_id", "name", "source_image_url", "project_id")}).map(lambda v: json.dumps(v).encode())
    nested = st.integers(min_value=1, max_value=5000).map(lambda d: deep_json(d).encode())
    return st.one_of(st.none(), as_json, shaped, nested, st.binary(max_size=200),
                     st.sampled_from([b"", b"{", b"[", b"nul", b'{"a":NaN}', b'"\\u0000"', b'{"\\u0000":1}',
                                      b'["\\ud800"]', b"\xff\xfe", b"[" * 5000, b'{"a":1}' * 3]))


def query(identities: Identities) -> st.SearchStrategy[list[tuple[str, str]]]:
    value = st.one_of(
        text(),
        st.builds(lambda op, v: f"{op}.{v}", st.sampled_from(OPERATORS), text(20)),
        st.builds(lambda vs: f"in.({','.join(vs)})", st.lists(text(8), max_size=4)),
        st.sampled_from(UNICODE_DIGITS + ["1", "0", "-1", "10000000000000000000000", "id.desc", "*",
                                          "id,name", "count()", "x->>y", "id::text"]),
        st.sampled_from([f"eq.{i}" for i in identities.ids] or ["eq.1"]))
    key = st.one_of(st.sampled_from(WORDS), text(12))
    return st.lists(st.tuples(key, value), max_size=5)


def headers(identities: Identities) -> st.SearchStrategy[dict[str, str]]:
    credential = st.sampled_from([identities.anon_key, identities.service_key, identities.user_token, "",
                                  "not-a-jwt", identities.anon_key[:-3] + "abc", "e30.e30.e30"])
    return st.fixed_dictionaries({}, optional={
        "apikey": credential,
        "Authorization": st.one_of(credential.map(lambda c: f"Bearer {c}".strip()), header_text()),
        "Content-Type": st.one_of(st.sampled_from(["application/json", "text/plain", "application/octet-stream",
                                                   "application/x-www-form-urlencoded", "multipart/form-data",
                                                   "application/json; charset=latin-1", "text/csv"]),
                                  header_text()),
        "Prefer": st.lists(st.sampled_from(
            ["return=representation", "return=minimal", "return=headers-only", "count=exact", "count=planned",
             "resolution=merge-duplicates", "resolution=ignore-duplicates", "missing=default", "handling=strict",
             "handling=lenient", "max-affected=1", "max-affected=²", "max-affected=-1", "tx=rollback", "x=y"]),
            max_size=4).map(", ".join),
        "Range": st.one_of(st.sampled_from(["0-9", "items=0-0", "5-1", "²-③", "-", "0-", "a-b"]), header_text()),
        "Accept": st.sampled_from(["*/*", "application/json", "application/vnd.pgrst.object+json", "text/csv",
                                   "application/geo+json", "image/png", ""]),
        "Accept-Profile": st.sampled_from(["public", "auth", "internal", "storage", ""]),
        "Content-Profile": st.sampled_from(["public", "auth", "internal", ""]),
        "X-API-Key": st.sampled_from([identities.webhook_key, "wrong", ""]),
        "webhook-id": header_text(),
        "X-Forwarded-For": header_text(),
        "Origin": st.sampled_from(["https://app.example", "null", ""]),
    })


def path_arguments(route: Route, identities: Identities) -> st.SearchStrategy[dict[str, str]]:
    def one(name: str, converter: str) -> st.SearchStrategy[str]:
        known = {"name": identities.tables + identities.functions, "job_id": identities.ids}.get(name, [])
        free = st.text(alphabet=string.ascii_letters + string.digits + "-_.~%!$'()*+,;=:@²①ä ", min_size=1,
                       max_size=40)
        if converter == "path":
            free = st.lists(free, min_size=1, max_size=3).map("/".join)
        return st.one_of(st.sampled_from(known), free) if known else free

    return st.fixed_dictionaries({name: one(name, converter) for name, converter in route.arguments})


def fill(rule: str, arguments: dict[str, str]) -> str:
    """The rule with each `<converter:name>` replaced by its percent-encoded value."""
    from urllib.parse import quote  # here: only path filling needs it

    return RULE_ARGUMENT.sub(lambda m: quote(arguments[m["name"]], safe="/"), rule)


def query_string(params: list[tuple[str, str]]) -> str:
    """Percent-encoded as UTF-8, lone surrogates included (they arrive as invalid UTF-8, as a hostile client sends)."""
    from urllib.parse import quote  # here: only URL building needs it

    def encode(value: str) -> str:
        return quote(value.encode("utf-8", "surrogatepass"), safe="")

    return "&".join(f"{encode(key)}={encode(value)}" for key, value in params)


def curl(method: str, url: str, headers: dict[str, str], body: bytes | None) -> str:
    """The request as a shell command that reproduces it."""
    parts = ["curl", "-i", "-X", method, url]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    if body is not None:
        try:
            parts += ["--data-binary", body.decode("utf-8")]
        except UnicodeDecodeError:
            parts = ["printf", repr(body)[2:-1], "|", *parts, "--data-binary", "@-"]
    return " ".join(shlex.quote(p) if p != "|" else p for p in parts)


def frames(identities: Identities) -> st.SearchStrategy[str]:
    """Phoenix frames, well-formed or not, in both serializations (1.0.0 objects, 2.0.0 arrays)."""
    topic = st.one_of(st.sampled_from(["phoenix", "realtime:public", "realtime:public:segmentation_results",
                                       "realtime:x", "realtime:", ""]), text(30))
    event = st.one_of(st.sampled_from(["phx_join", "phx_leave", "heartbeat", "access_token", "broadcast",
                                       "presence", "postgres_changes", "phx_reply", "x"]), text(15))
    token = st.sampled_from([identities.user_token, identities.anon_key, identities.service_key, "garbage", ""])
    binding = st.fixed_dictionaries({}, optional={
        "event": st.one_of(st.sampled_from(["*", "INSERT", "UPDATE", "DELETE"]), json_values([])),
        "schema": st.one_of(st.sampled_from(["public", "auth", "internal"]), json_values([])),
        "table": st.one_of(st.sampled_from(identities.tables or ["x"]), json_values([])),
        "filter": st.one_of(st.sampled_from(["id=eq.1", "user_id=in.(a,b)", "x=zz.1", "id=eq."]), json_values([])),
    })
    config = st.fixed_dictionaries({}, optional={
        "postgres_changes": st.one_of(st.lists(binding, max_size=3), json_values([])),
        "broadcast": json_values([]), "presence": json_values([]), "private": json_values([])})
    payload = st.one_of(
        st.fixed_dictionaries({}, optional={"config": config, "access_token": st.one_of(token, json_values([]))}),
        json_values([]))
    ref = st.one_of(st.none(), st.integers(), text(10))
    objects = st.builds(lambda t, e, p, r: json.dumps({"topic": t, "event": e, "payload": p, "ref": r}),
                        topic, event, payload, ref)
    arrays = st.builds(lambda j, r, t, e, p: json.dumps([j, r, t, e, p]), ref, ref, topic, event, payload)
    raw = st.one_of(json_values([]).map(json.dumps), text(200),
                    st.integers(min_value=1, max_value=5000).map(deep_json),
                    st.sampled_from(['{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"\\u0000"}',
                                     '["\\ud800",null,"phoenix","heartbeat",{}]', "[" * 3000]))
    return st.one_of(objects, arrays, raw)


def fingerprint(conn: psycopg.Connection) -> dict[str, str]:
    """Every table of CHECKED_SCHEMAS with a hash of its rows (small tables: the fuzz stack's own database)."""
    tables = conn.execute("select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                          "where c.relkind in ('r', 'p') and n.nspname = any(%s) order by 1, 2",
                          (list(CHECKED_SCHEMAS),)).fetchall()
    if not tables:
        return {}
    parts = [sql.SQL("select {label}, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {table} t")
             .format(label=sql.Literal(f"{schema}.{name}"), table=sql.Identifier(schema, name))
             for schema, name in tables]
    return dict(conn.execute(sql.SQL(" union all ").join(parts)).fetchall())
