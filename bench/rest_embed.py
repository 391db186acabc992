"""Resource embedding's cost: a user's 20 latest results with `projects(name)` embedded, next to the same list
without the embed, through `/rest/v1` (a live `segbase api`, wrk as the sender) in the same run; and the embedded
statement segbase composes next to a hand-written join, run directly as that user. 100k results for 1k users, 5
projects each.

    .venv/bin/python -m bench.rest_embed [--users 1000] [--per-user 100] [--seconds 10] [--rounds 3]

It creates and drops its own database. wrk runs the two URLs in alternating rounds (one thread, 4 connections,
the user's token); the direct comparison alternates the two statements on one connection.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import time
import uuid
from urllib.parse import urlencode

import psycopg
from psycopg import sql

from api.tokens import api_key
from bench.common import percentile
from bench.rest_list import sessions_and_tokens
from db.migrate import migrate
from db.rest import builder
from db.rest.catalog import load_catalog
from db.urls import authenticator_libpq_url, libpq_url
from tests.support.bulk import bulk_user_ids, load_projects, load_results
from tests.support.database import create_database, drop_database, make_test_settings
from tests.support.processes import ApiProcess

PLAIN = {"select": "*", "order": "created_at.desc", "limit": "20"}
EMBEDDED = {"select": "*,projects(name)", "order": "created_at.desc", "limit": "20"}
# What a developer would write by hand for the embedded list: the page, then one join for the project's name.
HAND_WRITTEN = sql.SQL("""
select null::bigint, count(t), coalesce(json_agg(t), '[]')::text from (
  select r.*, case when p.id is null then null else json_build_object('name', p.name) end as projects
  from public.segmentation_results r left join public.projects p on p.id = r.project_id
  order by r.created_at desc limit 20) t""")
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(url: str, headers: dict[str, str], seconds: int) -> dict[str, float]:
    """One wrk run: mean and p50/p99 latency in ms, requests per second."""
    command = ["wrk", "-t1", "-c4", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
        return float(value) * UNITS[unit]
    mean = ms(re.search(r"^\s+Latency\s+(\S+)", out, re.MULTILINE).group(1))
    # anchored: the Stdev column ends in a percentage too ("75.50%" must not pass for the 50th percentile)
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"mean": mean, "p50": p50, "p99": p99, "rps": rate}


def direct(settings, user_id: str, statements: dict[str, tuple[sql.Composable, dict]], requests: int) -> dict:
    samples: dict[str, list[float]] = {name: [] for name in statements}
    with psycopg.connect(authenticator_libpq_url(settings)) as conn:
        # rendered once: this compares what PostgreSQL does; composing psycopg.sql objects is the API's cost,
        # which the HTTP comparison includes
        statements = {name: (sql.SQL(query.as_string(conn)), params) for name, (query, params) in statements.items()}
        for i in range(-50, requests):  # the first 50 rounds warm caches and are not counted
            for name, (query, params) in statements.items():
                t0 = time.perf_counter()
                with conn.transaction():
                    conn.execute("select set_config('role', 'authenticated', true), "
                                 "set_config('request.jwt.claims', %s, true)",
                                 (json.dumps({"sub": user_id, "role": "authenticated"}),))
                    _total, rows, _body = conn.execute(query, params).fetchone()
                assert rows == 20, (name, rows)
                if i >= 0:
                    samples[name].append((time.perf_counter() - t0) * 1000)
    return {name: percentile(values, 50) for name, values in samples.items()}


def run(stack=None, *, users: int = 1000, per_user: int = 100, seconds: int = 10, rounds: int = 3,
        requests: int = 2000) -> dict:
    """bench/run.py's entry point (the stack argument is unused: this benchmark loads a database of its own).
    HTTP figures are the medians of the rounds; `sql_p50_ms` are the statements run directly as the user."""
    name = f"segbase_bench_embed_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        settings = make_test_settings(url, f"b{uuid.uuid4().hex[:8]}", db_pool_size=4)
        migrate(settings, log=lambda *_: None)
        with psycopg.connect(libpq_url(url), autocommit=True) as owner:
            load_results(owner, users=users, per_user=per_user, tag="bench")
            load_projects(owner, per_user=5, tag="bench")
            user_id = bulk_user_ids(owner, "bench", 1)[0]
            token = sessions_and_tokens(settings, owner, [user_id])[user_id]

        with psycopg.connect(authenticator_libpq_url(settings)) as conn:
            catalog = load_catalog(conn)
        embedded = builder.read_query(catalog, "segmentation_results", list(EMBEDDED.items()))
        plain = builder.read_query(catalog, "segmentation_results", list(PLAIN.items()))
        sql_p50 = direct(settings, user_id, {"plain": (plain.query, plain.params),
                                             "embedded": (embedded.query, embedded.params),
                                             "hand-written join": (HAND_WRITTEN, {})}, requests)

        api = ApiProcess(settings).start()
        try:
            headers = {"apikey": api_key(settings, "anon"), "Authorization": f"Bearer {token}"}
            runs: dict[str, list[dict[str, float]]] = {"plain": [], "embedded": []}
            for label, query in (("plain", PLAIN), ("embedded", EMBEDDED)):  # warm-up, not counted
                wrk(f"{api.url}/rest/v1/segmentation_results?{urlencode(query)}", headers, 2)
            for _ in range(rounds):
                for label, query in (("plain", PLAIN), ("embedded", EMBEDDED)):
                    runs[label].append(wrk(f"{api.url}/rest/v1/segmentation_results?{urlencode(query)}", headers,
                                           seconds))
        finally:
            api.stop()
    finally:
        drop_database(name)

    http = {label: {key: round(statistics.median(r[key] for r in runs[label]), 3)
                    for key in ("mean", "p50", "p99", "rps")} for label in runs}
    return {"results": users * per_user, "users": users, "projects_per_user": 5,
            "sender": f"wrk -t1 -c4, {rounds} rounds × {seconds} s per URL, medians of the rounds",
            "queries": {"plain": urlencode(PLAIN, safe="*,()"), "embedded": urlencode(EMBEDDED, safe="*,()")},
            "http": http,
            "ratio_http_embedded_vs_plain_p50": round(http["embedded"]["p50"] / http["plain"]["p50"], 2),
            "ratio_http_plain_vs_embedded_rps": round(http["plain"]["rps"] / http["embedded"]["rps"], 2),
            "sql_p50_ms": {k: round(v, 3) for k, v in sql_p50.items()},
            "ratio_sql_embedded_vs_hand_written": round(sql_p50["embedded"] / sql_p50["hand-written join"], 2),
            "ratio_sql_embedded_vs_plain": round(sql_p50["embedded"] / sql_p50["plain"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="direct SQL repetitions per statement")
    args = parser.parse_args()
    out = run(users=args.users, per_user=args.per_user, seconds=args.seconds, rounds=args.rounds,
              requests=args.requests)
    print(f"{out['results']} results, {out['users']} users, 5 projects each; {out['sender']}")
    for label in ("plain", "embedded"):
        h = out["http"][label]
        print(f"  GET ?{out['queries'][label]}: mean {h['mean']:6.2f} ms  p50 {h['p50']:6.2f} ms  "
              f"p99 {h['p99']:6.2f} ms  {h['rps']:7.0f} req/s")
    print(f"  HTTP embedded / plain: p50 {out['ratio_http_embedded_vs_plain_p50']:4.2f}x  "
          f"throughput {out['ratio_http_plain_vs_embedded_rps']:4.2f}x")
    print(f"  SQL directly ({args.requests} each, p50): "
          + "  ".join(f"{k} {v:.3f} ms" for k, v in out["sql_p50_ms"].items()))
    print(f"  SQL embedded / hand-written join: {out['ratio_sql_embedded_vs_hand_written']:4.2f}x   "
          f"embedded / plain: {out['ratio_sql_embedded_vs_plain']:4.2f}x")
    print("  statements per request: 1 (the composed read is one statement; embeds are lateral joins in it)")


if __name__ == "__main__":
    main()
