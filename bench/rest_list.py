"""The list clients make most — a user's 20 latest results — through HTTP (/rest/v1, a live `segbase api`) next to
the very same SQL run directly as that user (authenticator + set_config, one transaction), in the same run, on
100k results for 1k users.

    .venv/bin/python -m bench.rest_list [--users 1000] [--per-user 100] [--requests 2000]

It creates and drops its own database. Prints p50/p95 (ms) for both and their ratio; sequential requests on one
keep-alive connection (latency, not throughput).
"""
from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import datetime, timezone

import httpx
import psycopg

from api.identity import mint_access_token
from api.tokens import api_key
from bench.common import percentile
from db.migrate import migrate
from db.rest import builder
from db.rest.catalog import load_catalog
from db.urls import authenticator_libpq_url, libpq_url
from tests.support.bulk import bulk_user_ids, load_results
from tests.support.database import create_database, drop_database, make_test_settings
from tests.support.processes import ApiProcess

QUERY = {"select": "*", "order": "created_at.desc", "limit": "20"}


def sessions_and_tokens(settings, conn: psycopg.Connection, user_ids: list[str]) -> dict[str, str]:
    now = datetime.now(timezone.utc)
    tokens = {}
    for user_id in user_ids:
        session_id = str(uuid.uuid4())
        conn.execute("insert into auth.sessions (id, user_id, created_at, updated_at, aal) "
                     "values (%s, %s, %s, %s, 'aal1')", (session_id, user_id, now, now))
        tokens[user_id] = mint_access_token(settings, session_id=session_id, user={"id": user_id}).token
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=100)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sample-users", type=int, default=100)
    args = parser.parse_args()

    name = f"segbase_bench_rest_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        settings = make_test_settings(url, f"b{uuid.uuid4().hex[:8]}", db_pool_size=2)
        migrate(settings, log=lambda *_: None)
        with psycopg.connect(libpq_url(url), autocommit=True) as owner:
            started = time.perf_counter()
            load_results(owner, users=args.users, per_user=args.per_user, tag="bench")
            loaded = owner.execute("select count(*) from public.segmentation_results").fetchone()[0]
            print(f"loaded {loaded} results for {args.users} users in {time.perf_counter() - started:.1f}s")
            users = bulk_user_ids(owner, "bench", args.sample_users)
            tokens = sessions_and_tokens(settings, owner, users)

        with psycopg.connect(authenticator_libpq_url(settings)) as conn:
            catalog = load_catalog(conn)
            conn.rollback()
            statement = builder.read_query(catalog, "segmentation_results", list(QUERY.items()))
            direct = []
            for i in range(-50, args.requests):  # the first 50 warm caches and are not counted
                user_id = users[i % len(users)]
                t0 = time.perf_counter()
                with conn.transaction():
                    conn.execute("select set_config('role', 'authenticated', true), "
                                 "set_config('request.jwt.claims', %s, true)",
                                 (json.dumps({"sub": user_id, "role": "authenticated"}),))
                    _total, rows, _ = conn.execute(statement.query, statement.params).fetchone()
                elapsed = time.perf_counter() - t0
                assert rows == min(20, args.per_user)
                if i >= 0:
                    direct.append(elapsed * 1000)

        api = ApiProcess(settings).start()
        try:
            anon = api_key(settings, "anon")
            http_ms = []
            with httpx.Client(base_url=f"{api.url}/rest/v1", timeout=30) as client:
                for i in range(-50, args.requests):
                    user_id = users[i % len(users)]
                    headers = {"apikey": anon, "Authorization": f"Bearer {tokens[user_id]}"}
                    t0 = time.perf_counter()
                    response = client.get("/segmentation_results", params=QUERY, headers=headers)
                    elapsed = time.perf_counter() - t0
                    assert response.status_code == 200 and len(response.json()) == min(20, args.per_user)
                    if i >= 0:
                        http_ms.append(elapsed * 1000)
        finally:
            api.stop()

        p50_h, p95_h = percentile(http_ms, 50), percentile(http_ms, 95)
        p50_d, p95_d = percentile(direct, 50), percentile(direct, 95)
        print(f"GET /rest/v1/segmentation_results?select=*&order=created_at.desc&limit=20 "
              f"({args.requests} requests, {len(users)} users)")
        print(f"  HTTP (segbase api):     p50 {p50_h:7.2f} ms   p95 {p95_h:7.2f} ms")
        print(f"  same SQL, direct:       p50 {p50_d:7.2f} ms   p95 {p95_d:7.2f} ms")
        print(f"  ratio HTTP / direct:    p50 {p50_h / p50_d:5.1f}x     p95 {p95_h / p95_d:5.1f}x")
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
