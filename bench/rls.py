"""RLS overhead on the list clients make most — a user's 20 latest results — over 1M results for 10k users:
the query as the user (RLS adds `user_id = auth.uid()`) vs the same SQL as service_role with the filter written
out, alternated on one connection in the same run; then the same list through /rest/v1 (a live `segbase api`).

    .venv/bin/python -m bench.rls [--users 10000] [--per-user 100] [--queries 2000]

The rows are bulk-loaded by tests/support/bulk.py as the owner with `session_replication_role = replica` for that
one transaction (user triggers — sign-up profile, reservation, outbox — are skipped for the load only).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psycopg

from bench.common import Sampler, percentile
from bench.rest_list import QUERY, sessions_and_tokens
from bench.sender import wrk_path
from bench.stack import Stack, pretty
from db.urls import authenticator_libpq_url
from tests.support.bulk import bulk_user_ids, load_results

TOKENS_LUA = Path(__file__).with_name("wrk_tokens.lua")
AS_USER = "select * from public.segmentation_results order by created_at desc limit 20"
AS_SERVICE = ("select * from public.segmentation_results where user_id = %s::uuid "
              "order by created_at desc limit 20")


def stats(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 3), "p95_ms": round(percentile(ms, 95), 3),
            "mean_ms": round(statistics.fmean(ms), 3)}


def timed(conn: psycopg.Connection, role: str, user_id: str, query: str, params: tuple) -> float:
    """One transaction as `role` (claims as the API sets them); only the list query itself is timed."""
    claims = {"sub": user_id, "role": role} if role == "authenticated" else {"role": role}
    with conn.transaction():
        conn.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                     (role, json.dumps(claims)))
        t0 = time.perf_counter()
        rows = conn.execute(query, params, prepare=True).fetchall()
        elapsed = time.perf_counter() - t0
    assert len(rows) == 20, len(rows)
    return elapsed * 1000


def plan_of(conn: psycopg.Connection, role: str, user_id: str, query: str, params: tuple) -> str:
    claims = {"sub": user_id, "role": role} if role == "authenticated" else {"role": role}
    with conn.transaction():
        conn.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                     (role, json.dumps(claims)))
        lines = [r[0] for r in conn.execute("explain (costs off) " + query, params).fetchall()]
    return " / ".join(line.strip() for line in lines)


def wrk_get(url: str, anon: str, tokens: list[str], seconds: int) -> dict:
    """Sequential keep-alive GETs by wrk (one connection), each as the next user's token (bench/wrk_tokens.lua)."""
    with tempfile.TemporaryDirectory(prefix="segbase-wrk-") as tmp:
        tokens_path, out_path = Path(tmp) / "tokens.txt", Path(tmp) / "out.json"
        tokens_path.write_text("\n".join(tokens) + "\n")
        env = {**os.environ, "WRK_TOKENS": str(tokens_path), "WRK_APIKEY": anon, "WRK_OUT": str(out_path)}
        subprocess.run([wrk_path(), "-t1", "-c1", f"-d{seconds}s", "-s", str(TOKENS_LUA), url], env=env,
                       capture_output=True, check=True, timeout=seconds + 60)
        result = json.loads(out_path.read_text())
    if result["non_2xx"] or result["socket_errors"]:
        raise RuntimeError(f"wrk saw errors: {result}")
    return {"n": result["requests"], **{k: result[k] for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")},
            "sender": f"wrk -t1 -c1 -d{seconds}s -s bench/wrk_tokens.lua ({len(tokens)} users' tokens in turn)"}


def run(stack: Stack, *, users: int = 10_000, per_user: int = 100, queries: int = 2000, http_seconds: int = 10,
        sample_users: int = 200, profile_seconds: int = 0) -> dict:
    tag = uuid.uuid4().hex[:6]
    with psycopg.connect(stack.owner_url, autocommit=True) as owner:
        started = time.perf_counter()
        load_results(owner, users=users, per_user=per_user, tag=tag)
        load_s = time.perf_counter() - started
        total = owner.execute("select count(*) from public.segmentation_results").fetchone()[0]
        sample = bulk_user_ids(owner, tag, sample_users)
        tokens = sessions_and_tokens(stack.settings, owner, sample)

    rng = random.Random(11)
    as_user: list[float] = []
    as_service: list[float] = []
    with psycopg.connect(authenticator_libpq_url(stack.settings), autocommit=True) as conn:
        plans = {"user": plan_of(conn, "authenticated", sample[0], AS_USER, ()),
                 "service_role": plan_of(conn, "service_role", sample[0], AS_SERVICE, (sample[0],))}
        for i in range(-50, queries):  # the first 50 of each warm caches and are not counted
            user_id = rng.choice(sample)
            pair = [("u", lambda: timed(conn, "authenticated", user_id, AS_USER, ())),
                    ("s", lambda: timed(conn, "service_role", user_id, AS_SERVICE, (user_id,)))]
            if i % 2:
                pair.reverse()
            for kind, run_one in pair:
                elapsed = run_one()
                if i >= 0:
                    (as_user if kind == "u" else as_service).append(elapsed)

    anon = stack.anon_key()
    url = f"{stack.url}/rest/v1/segmentation_results?{urlencode(QUERY, safe='*,()')}"
    check = httpx.get(url, headers={"apikey": anon, "Authorization": f"Bearer {tokens[sample[0]]}"}, timeout=30)
    assert check.status_code == 200 and len(check.json()) == 20, check.text[:200]
    wrk_get(url, anon, [tokens[u] for u in sample], 2)  # warm-up: the sessions' cache, pooled connections
    http = wrk_get(url, anon, [tokens[u] for u in sample], http_seconds)
    sampler = None
    if profile_seconds:  # a pass of its own: py-spy's sampling would slow the timed run (bench/report.py)
        sampler = Sampler(stack.api.pid, profile_seconds)
        wrk_get(url, anon, [tokens[u] for u in sample], profile_seconds + 1)

    user_stats, service_stats = stats(as_user), stats(as_service)
    return {"rows": total, "users": users, "load_s": round(load_s, 1),
            "load_note": "bulk-loaded as owner with session_replication_role=replica (user triggers off for the load)",
            "queries": queries, "sql_as_user": user_stats, "sql_as_service_role_filtered": service_stats,
            "ratio_user_vs_service_p50": round(user_stats["p50_ms"] / service_stats["p50_ms"], 3),
            "ratio_user_vs_service_mean": round(user_stats["mean_ms"] / service_stats["mean_ms"], 3),
            "plans": plans, "http_rest_v1": http, "http_query": QUERY,
            "profiles": {"api": sampler.summary(("dispatch_request (",))} if sampler else {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--per-user", type=int, default=100)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    stack = Stack(tag=f"rls{uuid.uuid4().hex[:4]}", workers=0, relay=False).start()
    try:
        print(pretty(run(stack, users=args.users, per_user=args.per_user, queries=args.queries)))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
