"""Realtime on a shared table served under RLS (no owner column: every change is evaluated as each subscriber, one
database round trip per change and API process for all its subscribers), and the cost of postgres_changes
recovery per rejoin.

Fan-out: U users with one socket each subscribe to `public.bench_shared` (RLS on, `using (true)` for
authenticated: every subscriber sees every row, so each change is checked for U distinct callers); C changes/s
are committed by plain SQL INSERTs for S seconds. Reported per API process count (1, then 2 gunicorn workers):
delivered/s, p95 commit → receive, and the database's load: the CPU seconds of the API's PostgreSQL backends
(from /proc) per change. Reference in the same run: the same subscribers on the owner-routed
`segmentation_results` fast path (no database work per change).

Recovery: one socket rejoins with `since` after N changes it missed (owner-routed table, and the shared RLS table);
the join's round trip (phx_join → last replayed frame) against a plain join's, same run.

    .venv/bin/python -m bench.realtime_rls [--users 200] [--rate 50] [--seconds 10] [--missed 100]
"""
from __future__ import annotations

import argparse
import os
import time
import uuid

import psycopg

from bench.common import latency_summary
from bench.fanout import Clients, commit_changes, delivery, split
from bench.stack import Stack, pretty
from tests.support.realtime import PhoenixSocket

SHARED = "public.bench_shared"
SHARED_BINDING = {"event": "INSERT", "schema": "public", "table": "bench_shared"}
RESULTS_BINDING = {"event": "*", "schema": "public", "table": "segmentation_results"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def create_shared_table(stack: Stack) -> None:
    with psycopg.connect(stack.owner_url, autocommit=True) as conn:
        conn.execute(f"create table {SHARED} (id bigint generated always as identity primary key, text_prompt text)")
        conn.execute(f"alter table {SHARED} enable row level security")
        conn.execute(f'create policy "signed-in users read" on {SHARED} for select to authenticated using (true)')
        conn.execute(f"grant select on {SHARED} to authenticated")
        conn.execute(f"alter publication supabase_realtime add table {SHARED}")


def api_backend_cpu(stack: Stack) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the API's pool (pid → seconds)."""
    with psycopg.connect(stack.owner_url, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "select pid from pg_stat_activity where datname = current_database() and application_name = 'segbase-api'")]
    found = {}
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def commit_inserts(stack: Stack, rate: int, seconds: float) -> tuple[float, float, int]:
    ticks_per_s = 10
    per_tick = max(1, rate // ticks_per_s)
    changes = 0
    with psycopg.connect(stack.owner_url, autocommit=True) as conn:
        start = time.time()
        tick = 0
        while time.time() - start < seconds:
            delay = start + tick / ticks_per_s - time.time()
            if delay > 0:
                time.sleep(delay)
            conn.execute(f"insert into {SHARED} (text_prompt) select %s from generate_series(1, %s)",
                         (f"t:{time.time()}", per_tick))
            changes += per_tick
            tick += 1
        end = time.time()
    return start, end, changes


def fan_out(stack: Stack, users, result_ids: list[str], *, rate: int, seconds: float, clients: int,
            shared: bool) -> dict:
    sockets = [{"id": u.id, "token": u.access_token} for u in users]
    binding = SHARED_BINDING if shared else None  # None: the user's own results (owner routing)
    group = Clients([{"mode": "realtime", "url": stack.url, "anon": stack.anon_key(), "sockets": part,
                      "binding": binding} for part in split(sockets, clients)])
    try:
        connected = group.wait_ready()
        time.sleep(1)
        cpu_before = api_backend_cpu(stack)
        if shared:
            start, end, changes = commit_inserts(stack, rate, seconds)
        else:
            start, end, changes = commit_changes(stack, result_ids, rate, seconds, ticks_per_s=10)
        time.sleep(3)
        cpu_after = api_backend_cpu(stack)
        group.tell("stop")
        frames = group.results()
    finally:
        group.kill()
    db_cpu = sum(seconds_ - cpu_before.get(pid, 0.0) for pid, seconds_ in cpu_after.items())
    expected = changes * connected if shared else changes
    return {"subscribers": connected, "changes_committed": changes, "changes_per_s": round(changes / (end - start), 1),
            "frames_expected": expected, "api_db_cpu_s": round(db_cpu, 2),
            "api_db_cpu_ms_per_change": round(1000 * db_cpu / max(changes, 1), 3), **delivery(frames, (start, end))}


def rejoin_cost(stack: Stack, user, result_id: str, *, missed: int, repeats: int = 5) -> dict:
    """Round trip of a join (phx_join sent → join reply, or → the last replayed change) without and with `since`
    after `missed` changes on the owner-routed table and on the shared RLS table."""
    since = int(time.time() * 1000)
    time.sleep(0.01)
    with psycopg.connect(stack.owner_url, autocommit=True) as conn:
        for _ in range(missed):
            conn.execute("update public.segmentation_results set text_prompt = 'missed' where id = %s",
                         (result_id,))
        conn.execute(f"insert into {SHARED} (text_prompt) select 'missed' from generate_series(1, %s)", (missed,))
    stack.wait_outbox_drained()
    figures = {}
    for label, binding, expect in (("plain join", RESULTS_BINDING, 0),
                                   ("owner-routed, since", {**RESULTS_BINDING, "since": since}, missed),
                                   ("shared RLS table, since", {**SHARED_BINDING, "since": since}, missed)):
        samples = []
        for repeat in range(repeats):
            sock = PhoenixSocket(stack.url, stack.anon_key(), "1.0.0")
            try:
                t0 = time.perf_counter()
                reply = sock.join(f"realtime:rejoin-{repeat}", [binding], user.access_token)
                assert reply["payload"]["status"] == "ok", reply
                for _ in range(expect):
                    sock.wait(lambda m: m["event"] == "postgres_changes", 60)
                samples.append(time.perf_counter() - t0)
            finally:
                sock.close()
        figures[label] = {"replayed": expect, **latency_summary(samples)}
    base = figures["plain join"]["p50_ms"]
    for label in ("owner-routed, since", "shared RLS table, since"):
        figures[label]["extra_ms_per_replayed_change"] = round((figures[label]["p50_ms"] - base) / max(missed, 1), 3)
    return figures


def run_one(api_workers: int, *, users: int, rate: int, seconds: float, clients: int, missed: int) -> dict:
    stack = Stack(tag=f"rls{uuid.uuid4().hex[:4]}", workers=0, api_workers=api_workers).start()
    try:
        create_shared_table(stack)
        bench_users = stack.bulk_users(users, credits=100)
        results = stack.pending_results(bench_users, 1)
        result_of = {user_id: ids[0] for user_id, ids in results.items()}
        stack.wait_outbox_drained()
        ids = list(result_of.values())
        out = {"api_processes": api_workers,
               "shared_rls": fan_out(stack, bench_users, ids, rate=rate, seconds=seconds, clients=clients,
                                     shared=True),
               "owner_routed_reference": fan_out(stack, bench_users, ids, rate=rate, seconds=seconds,
                                                 clients=clients, shared=False)}
        if api_workers == 1:
            out["recovery"] = rejoin_cost(stack, bench_users[0], result_of[bench_users[0].id], missed=missed)
        return out
    finally:
        stack.stop()


def run(stack: Stack | None = None, *, users: int = 200, rate: int = 50, seconds: float = 10, clients: int = 2,
        missed: int = 100) -> dict:
    """bench/run.py's entry point; the stack argument is unused (each process count needs a stack of its own)."""
    return {"one_api_process": run_one(1, users=users, rate=rate, seconds=seconds, clients=clients, missed=missed),
            "two_api_processes": run_one(2, users=users, rate=rate, seconds=seconds, clients=clients, missed=missed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--missed", type=int, default=100)
    args = parser.parse_args()
    print(pretty(run(users=args.users, rate=args.rate, seconds=args.seconds, clients=args.clients,
                     missed=args.missed)))


if __name__ == "__main__":
    main()
