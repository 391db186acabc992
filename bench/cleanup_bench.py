"""cleanup-old-results on a large table: rows deleted per second and the longest transaction, next to the
reference measured in the same run — the same rows deleted by ONE statement (rolled back), which is what an
unbatched cleanup would do — and the latency of a user's list query running concurrently with each.

    .venv/bin/python -m bench.cleanup_bench [--rows 1000000] [--users 1000] [--batch-size 2000]

Creates a scratch database (dropped afterwards). The table is loaded with triggers off (a bulk load, not the
subject); the deletes run with every trigger on — the realtime capture writes one outbox row per deleted result,
as it does in production. Ages are spread over 0–120 days and tiers 70/20/10 % free/pro/enterprise, statuses
done/error/pending/processing 80/12/4/4 %.
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid

import psycopg

from db.cleanup import cleanup_lock
from db.engine import create_app_engine
from db.migrate import migrate
from db.urls import libpq_url
from tests.support.database import create_database, drop_database, make_test_settings
from workers.maintenance import run_cleanup

LOAD_SQL = """
insert into auth.users (id, aud, role, email, encrypted_password, raw_app_meta_data, raw_user_meta_data,
                        created_at, updated_at, is_anonymous)
select gen_random_uuid(), 'authenticated', 'authenticated', 'bench-' || n || '@example.com', '', '{}', '{}',
       now(), now(), false
  from generate_series(1, %(users)s) n;
update public.users_profile set credits = 1000000,
       tier = (case when random() < 0.7 then 'free' when random() < 0.67 then 'pro' else 'enterprise' end)::public.user_tier;
set session_replication_role = replica;
insert into public.segmentation_results (user_id, source_image_url, status, created_at, updated_at)
select u.ids[1 + (g.n %% array_length(u.ids, 1))], 'https://img.example/in.png',
       (case when g.r < 0.80 then 'done' when g.r < 0.92 then 'error' when g.r < 0.96 then 'pending'
             else 'processing' end)::public.segmentation_status,
       now() - g.age, now() - g.age
  from (select n, random() as r, random() * interval '120 days' as age from generate_series(1, %(rows)s) n) g
  cross join (select array_agg(id) as ids from public.users_profile) u;
set session_replication_role = origin;
"""

COUNT_ELIGIBLE = """
select count(*) from public.segmentation_results r join public.users_profile p on p.id = r.user_id
 where r.status in ('done', 'error')
   and r.created_at < now() - make_interval(days => internal.config_int('retention_days_' || p.tier::text)::int)
"""

REFERENCE_DELETE = """
delete from public.segmentation_results r using public.users_profile p
 where p.id = r.user_id and r.status in ('done', 'error')
   and r.created_at < now() - make_interval(days => internal.config_int('retention_days_' || p.tier::text)::int)
"""


class LatencyProbe:
    """A user's transaction, as the API runs it, in a loop until stopped: list my latest results, and file my
    oldest finished result (a write to a row the cleanup deletes)."""

    def __init__(self, url: str, user_id: str) -> None:
        self.url, self.user_id = url, user_id
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        claims = json.dumps({"sub": self.user_id, "role": "authenticated"})
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                with conn.transaction():
                    conn.execute("select set_config('role', 'authenticated', true), "
                                 "set_config('request.jwt.claims', %s, true)", (claims,))
                    conn.execute("select id, status from public.segmentation_results "
                                 "order by created_at desc limit 20").fetchall()
                    # A write to the user's oldest finished result: the row the cleanup locks first.
                    conn.execute("update public.segmentation_results set project_id = null where id = ("
                                 "select id from public.segmentation_results where status in ('done', 'error') "
                                 "order by created_at limit 1)")
                self.samples.append((time.perf_counter() - started) * 1000)
                self.stop.wait(0.02)

    def __enter__(self) -> LatencyProbe:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.samples)
        return {"queries": len(ordered), "p50_ms": round(statistics.median(ordered), 2),
                "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2), "max_ms": round(ordered[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()

    name = f"segbase_bench_cleanup_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    settings = make_test_settings(url, "benchcleanup", cleanup_batch_size=args.batch_size,
                                  db_statement_timeout_ms=60_000)
    try:
        migrate(settings, log=lambda *_: None)
        owner = libpq_url(settings.database_url)
        with psycopg.connect(owner, autocommit=True) as conn:
            started = time.perf_counter()
            for statement in filter(str.strip, LOAD_SQL.split(";\n")):
                conn.execute(statement, {"users": args.users, "rows": args.rows} if "%(" in statement else None)
            conn.execute("vacuum analyze public.segmentation_results, public.users_profile")
            load_seconds = time.perf_counter() - started
            eligible = conn.execute(COUNT_ELIGIBLE).fetchone()[0]
            probe_user = str(conn.execute("select id from public.users_profile limit 1").fetchone()[0])

            # Reference: the same rows in one statement, as service_role, rolled back.
            with LatencyProbe(owner, probe_user) as ref_probe:
                started = time.perf_counter()
                with conn.transaction(force_rollback=True):
                    conn.execute("set local role service_role; set local statement_timeout = 0")
                    reference_rows = conn.execute(REFERENCE_DELETE).rowcount
                reference_seconds = time.perf_counter() - started
            conn.execute("vacuum analyze public.segmentation_results")

        engine = create_app_engine(settings, pool_size=2, application_name="bench-cleanup")
        with LatencyProbe(owner, probe_user) as probe:
            with cleanup_lock(engine):
                counts = run_cleanup(engine, batch_size=args.batch_size, inbox_retention_days=30,
                                                 outbox_retention_hours=24)
        engine.dispose()
        with psycopg.connect(owner, autocommit=True) as conn:
            remaining = conn.execute(COUNT_ELIGIBLE).fetchone()[0]
            outbox_rows = conn.execute("select count(*) from internal.realtime_outbox where op = 'DELETE'").fetchone()[0]

        batched_rate = counts.results / counts.seconds
        reference_rate = reference_rows / reference_seconds
        print(json.dumps({
            "table_rows": args.rows, "users": args.users, "eligible": eligible, "load_seconds": round(load_seconds, 1),
            "batched": {"batch_size": args.batch_size, "deleted": counts.results, "seconds": round(counts.seconds, 2),
                        "rows_per_second": round(batched_rate), "transactions": counts.transactions,
                        "longest_transaction_ms": round(counts.longest_transaction_ms, 1),
                        "concurrent_user_query": probe.summary(), "eligible_left": remaining,
                        "realtime_delete_events": outbox_rows},
            "reference_one_statement": {"deleted": reference_rows, "seconds": round(reference_seconds, 2),
                                        "rows_per_second": round(reference_rate),
                                        "longest_transaction_ms": round(reference_seconds * 1000, 1),
                                        "concurrent_user_query": ref_probe.summary()},
            "ratio_rows_per_second_batched_vs_reference": round(batched_rate / reference_rate, 2),
        }, indent=2))
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
