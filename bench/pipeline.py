"""Pipeline throughput: N webhooks POSTed to /functions/v1/process-webhook by wrk (bench/sender.py) on a stated
number of connections; accepted/s (2xx answers) and applied/s (until every event is committed by the workers), next
to pgbench running bench/event_tx.sql — the worker's own SQL for one event — with as many clients as worker
concurrency, in the same run on the same database. While the pipeline drains, py-spy samples the worker and API
processes.

Acceptance alone (the workers stopped): the same wrk command against the bare accept endpoint
(bench/accept_reference.py), then process-webhook, then the bare endpoint again; the ratio is process-webhook's
accepted/s ÷ the mean of the two reference runs. The workers then drain that backlog (the worker stage alone).

    .venv/bin/python -m bench.pipeline [--events 20000] [--concurrency 32]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import redis

from bench.accept_reference import start_accept_reference
from bench.common import CpuMeter, Sampler, cpu_seconds
from bench.sender import Sent, Wrk
from bench.stack import WEBHOOK_KEY, Stack, descendants, pretty
from schemas.webhook import WebhookEvent

# What counts as the path's own work in a profile: the view and the inbox writer's loops; the worker's tasks.
API_WORK = ("process_webhook (", "_write_forever (api/functions", "_publish_forever (")
WORKER_WORK = ("apply_webhook_event (", "apply_webhook_events (")
EVENT_TX = Path(__file__).with_name("event_tx.sql")
MASK_URL = "https://cdn.example/mask.png"


def done_body(result_id: str) -> dict:
    return {"task_id": result_id, "status": "done", "mask_url": MASK_URL,
            "labels": [{"label": "cat", "score": 0.93}], "metadata": {"model": "bench"}}


def pgbench_path() -> str:
    return shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"


def prepare_reference_events(stack: Stack, count: int) -> None:
    """`count` pending results and, for each, a `done` event stored in the inbox exactly as the API stores it,
    numbered 1..count in bench.event_queue for event_tx.sql. The bench schema exists only in this database."""
    users = stack.bulk_users(max(1, count // 100), credits=10_000, tokens=False)
    results = [r for ids in stack.pending_results(users, 100).values() for r in ids][:count]
    with stack.owner() as conn:
        conn.execute("create schema if not exists bench")
        conn.execute("create table if not exists bench.event_queue (n bigint primary key, event_id uuid not null)")
        conn.execute("create sequence if not exists bench.event_seq")
        conn.execute("grant usage on schema bench to authenticator")
        conn.execute("grant select on bench.event_queue to authenticator")
        conn.execute("grant usage on sequence bench.event_seq to authenticator")
        start = conn.execute("select coalesce(max(n), 0) from bench.event_queue").fetchone()[0]
        rows = []
        for result_id in results:
            event = WebhookEvent.model_validate(done_body(result_id))
            rows.append((event.content_hash(), result_id, event.inbox_payload()))
        with conn.cursor() as cur:
            cur.executemany("insert into internal.webhook_inbox (idempotency_key, result_id, event_status, payload) "
                            "values (%s, %s, 'done', %s::jsonb)", rows)
        conn.execute("insert into bench.event_queue (n, event_id) "
                     "select %s + row_number() over (order by received_at, id), id from internal.webhook_inbox "
                     "where state = 'received' and id not in (select event_id from bench.event_queue)", (start,))
        conn.execute("select setval('bench.event_seq', %s, %s)", (max(start, 1), start > 0))
        conn.execute("analyze internal.webhook_inbox")
        conn.execute("analyze bench.event_queue")


def run_pgbench(stack: Stack, *, clients: int, transactions: int, attempt: bool) -> dict:
    """pgbench -M extended with event_tx.sql, `transactions` events per client, as `authenticator`."""
    settings = stack.settings
    url = urlsplit(settings.database_url)
    env = {**os.environ, "PGPASSWORD": settings.db_authenticator_password.get_secret_value()}
    command = [pgbench_path(), "-n", "-M", "extended", "-f", str(EVENT_TX), "-D", f"attempt={int(attempt)}",
               "-c", str(clients), "-j", str(min(clients, 2)), "-t", str(transactions),
               "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432), "-U", "authenticator",
               url.path.lstrip("/")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout).group(1))
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    shown = " ".join(os.path.basename(c) if c.endswith(".sql") or c.endswith("pgbench") else c for c in command)
    return {"command": shown.replace(str(EVENT_TX.name), "bench/event_tx.sql"), "clients": clients,
            "events": clients * transactions, "tps": round(tps, 1),
            "latency_avg_ms": float(latency.group(1)) if latency else None,
            "failed": int(failed.group(1)) if failed else 0}


def process_groups(stack: Stack) -> dict[str, list[int]]:
    """The stack's processes by role, and the PostgreSQL backends serving this database (pooled, so they live
    through the run)."""
    with stack.owner() as conn:
        backends = dict(conn.execute(
            "select pid, coalesce(nullif(application_name, ''), usename::text) from pg_stat_activity "
            "where datname = current_database() and pid <> pg_backend_pid()").fetchall())
    mains = [w.pid for w in stack.worker_processes]
    groups = {"bench process (progress poll)": [os.getpid()],
              "api": [stack.api.pid, *descendants(stack.api.pid)],
              "celery worker main processes (consumer)": mains,
              "celery pool processes (tasks)": [p for p in stack.celery_pids() if p not in mains]}
    if stack.relay:
        relay = stack.relay_process()
        groups["relay"] = [relay.pid, *descendants(relay.pid)]
    groups["postgres backends (api)"] = [p for p, app in backends.items() if app.startswith("segbase-api")
                                         or app == "segbase"]
    groups["postgres backends (workers)"] = [p for p, app in backends.items() if app.startswith("segbase-worker")]
    groups["postgres backends (relay)"] = [p for p, app in backends.items() if app.startswith("segbase-relay")]
    named = {p for key, pids in groups.items() if key.startswith("postgres") for p in pids}
    groups["postgres backends (other: progress poll, owner)"] = [p for p in backends if p not in named]
    return groups


class Progress:
    """Polls the inbox: how many of the run's events reached a final state, and when the last one did."""

    def __init__(self, stack: Stack, result_ids: list[str]) -> None:
        self.stack = stack
        self.result_ids = result_ids
        self.final = 0
        self.series: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Progress:
        self.thread.start()
        return self

    def _run(self) -> None:
        with self.stack.owner() as conn:
            conn.execute("create temp table run_results (id uuid primary key)")
            with conn.cursor() as cur:
                cur.executemany("insert into run_results values (%s)", [(r,) for r in self.result_ids])
            while not self.stop.is_set():
                self.final = conn.execute("select count(*) from internal.webhook_inbox i join run_results r "
                                          "on r.id = i.result_id where i.state <> 'received'").fetchone()[0]
                self.series.append((time.monotonic(), self.final))
                if self.final >= len(self.result_ids):
                    return
                time.sleep(0.5)


WEBHOOK_PATH = "/functions/v1/process-webhook"


def send(url: str, bodies: list[dict], connections: int, rate: float = 0) -> Sent:
    """POST every body once with wrk (closed loop on `connections` connections, or open loop at `rate`/s)."""
    return Wrk(url, bodies, connections=connections, rate=rate, headers={"X-API-Key": WEBHOOK_KEY}).run()


def sent_summary(sent: Sent) -> dict:
    return {"command": sent.command, "events": len(sent.sent_at), "statuses": sent.statuses,
            "accepted": sent.accepted, "wall_s": round(sent.wall_s, 2), "latency": sent.latency,
            "accepted_per_s": round(sent.accepted / sent.wall_s, 1) if sent.wall_s > 0 else 0.0,
            "wrk_cpu_ms_per_request": round(1000 * sent.cpu_s / max(len(sent.sent_at), 1), 3)}


def unknown_result_bodies(count: int) -> list[dict]:
    """Bodies for results that do not exist: accepted like any other (the API does not look results up), rejected
    by the worker; used to warm a server's pools and for the reference, which stores into a table of its own."""
    return [done_body(str(uuid.uuid4())) for _ in range(count)]


def accept_and_drain(stack: Stack, *, events: int, concurrency: int, batch_size: int) -> dict:
    """Acceptance alone, then the worker stage alone, as pgbench measures it.

    With no worker running: `events` distinct bodies POSTed to the bare accept reference, the same number to
    process-webhook (their Celery messages wait in Redis), and to the reference again — each by the same wrk
    command. Then the stack's workers start with INBOX_BATCH_SIZE=`batch_size` and drain the backlog:
    applied/s = events ÷ (last finished_at − first attempt), both read from the inbox rows."""
    stack.stop_workers()
    users = stack.bulk_users(max(1, events // 100), credits=10_000, tokens=False)
    result_ids = [r for ids in stack.pending_results(users, 100).values() for r in ids][:events]
    stack.wait_outbox_drained()
    list_key = stack.settings.redis_key("bench", "accept", uuid.uuid4().hex[:6])
    reference, reference_url = start_accept_reference(stack.owner_url, stack.settings.redis_url, list_key)
    try:
        warm = max(concurrency * 4, 8)
        send(reference_url + "/accept", unknown_result_bodies(warm), concurrency)
        send(stack.url + WEBHOOK_PATH, unknown_result_bodies(warm), concurrency)
        api_pids = [stack.api.pid, *descendants(stack.api.pid)]
        reference_pids = [reference.pid, *descendants(reference.pid)]

        def measured(url: str, pids: list[int], bodies: list[dict]) -> dict:
            """One wrk run, with the server's own CPU per request (its process tree, not its database)."""
            cpu = cpu_seconds(pids)
            summary = sent_summary(send(url, bodies, concurrency))
            summary["server_cpu_ms_per_request"] = round(1000 * (cpu_seconds(pids) - cpu) / len(bodies), 2)
            return summary

        before = measured(reference_url + "/accept", reference_pids, unknown_result_bodies(events))
        ours = measured(stack.url + WEBHOOK_PATH, api_pids, [done_body(r) for r in result_ids])
        after = measured(reference_url + "/accept", reference_pids, unknown_result_bodies(events))
    finally:
        reference.terminate()
        reference.wait(timeout=30)
        redis.Redis.from_url(stack.settings.redis_url).delete(list_key)
    reference_rate = (before["accepted_per_s"] + after["accepted_per_s"]) / 2
    stack.start_workers(extra_env={"INBOX_BATCH_SIZE": str(batch_size)})
    Progress(stack, result_ids).start().thread.join(timeout=900)
    with stack.owner() as conn:
        span, attempts = conn.execute(
            "select extract(epoch from max(finished_at) - min(last_attempt_at)), sum(attempts) "
            "from internal.webhook_inbox where result_id = any(%s::uuid[])", (result_ids,)).fetchone()
        states = dict(conn.execute("select state, count(*) from internal.webhook_inbox "
                                   "where result_id = any(%s::uuid[]) group by 1", (result_ids,)).fetchall())
    stack.wait_inbox_drained()  # the warm-up's unknown results too, before the next measurement
    span = float(span or 0)
    return {"batch_size": batch_size, "events": len(result_ids), "accepted": ours["accepted"],
            "accept": {"segbase": ours, "reference_before": before, "reference_after": after,
                       "reference_per_s": round(reference_rate, 1),
                       "ratio": round(ours["accepted_per_s"] / reference_rate, 3) if reference_rate else 0.0},
            "inbox_states": states, "attempts_per_event": round(int(attempts) / len(result_ids), 2),
            "drain_s": round(span, 2),
            "applied_per_s": round(len(result_ids) / span, 1) if span > 0 else 0.0}


def profile_pass(stack: Stack, concurrency: int, seconds: int) -> list[tuple[str, "Sampler"]]:
    """The measured run once more, shorter, under py-spy (started 2 s in): a pass of its own, because sampling
    every process ~100 times a second takes CPU from the two cores the measured run needs."""
    users = stack.bulk_users(max(1, 500 * (seconds + 4) // 100), credits=10_000, tokens=False)
    bodies = [done_body(r) for ids in stack.pending_results(users, 100).values() for r in ids]
    stack.wait_outbox_drained()
    samplers: list[tuple[str, Sampler]] = []
    delay = threading.Timer(2.0, lambda: samplers.extend(
        [(f"worker {w.name}", Sampler(w.pid, seconds)) for w in stack.worker_processes]
        + [("api", Sampler(stack.api.pid, seconds))]))
    delay.start()
    Wrk(stack.url + WEBHOOK_PATH, bodies, connections=concurrency, headers={"X-API-Key": WEBHOOK_KEY}).run()
    delay.join()
    for _, sampler in samplers:
        sampler.wait()
    stack.wait_inbox_drained()
    stack.wait_outbox_drained()
    return samplers


def run(stack: Stack, *, events: int = 20_000, concurrency: int = 32, reference_events: int = 8000,
        profile_seconds: int = 15, backlog_events: int = 5000) -> dict:
    clients = len(stack.worker_processes) * stack.worker_concurrency
    per_client = max(1, reference_events // clients)
    prepare_reference_events(stack, per_client * clients * 2)
    stack.wait_outbox_drained()
    reference = run_pgbench(stack, clients=clients, transactions=per_client, attempt=False)
    reference_two_tx = run_pgbench(stack, clients=clients, transactions=per_client, attempt=True)
    stack.wait_outbox_drained()

    # Warm-up: fills the API's and workers' connection pools (their backends are then counted by the CPU meter).
    warm_users = stack.bulk_users(1, credits=10_000, tokens=False)
    warm = [r for ids in stack.pending_results(warm_users, max(concurrency * 4, 8)).values() for r in ids]
    send(stack.url + WEBHOOK_PATH, [done_body(r) for r in warm], concurrency)
    stack.wait_inbox_drained()

    users = stack.bulk_users(max(1, events // 100), credits=10_000, tokens=False)
    by_user = stack.pending_results(users, 100)
    result_ids = [r for ids in by_user.values() for r in ids][:events]
    stack.wait_outbox_drained()
    with stack.owner() as conn:
        conn.execute("analyze")
        credits_before = conn.execute("select sum(credits) from public.users_profile where id = any(%s::uuid[])",
                                      ([u.id for u in users],)).fetchone()[0]
    bodies = [done_body(r) for r in result_ids]

    meter = CpuMeter(process_groups(stack)).start()
    wall0 = time.monotonic()
    progress = Progress(stack, result_ids).start()
    sender = Wrk(stack.url + WEBHOOK_PATH, bodies, connections=concurrency,
                 headers={"X-API-Key": WEBHOOK_KEY}).start()
    posted = sender.wait()
    progress.thread.join(timeout=1800)
    progress.stop.set()
    finished = next((t for t, n in progress.series if n >= len(result_ids)), None)
    meter.stop()
    wall = time.monotonic() - wall0

    with stack.owner() as conn:
        states = dict(conn.execute("select state, count(*) from internal.webhook_inbox "
                                   "where result_id = any(%s::uuid[]) group by 1", (result_ids,)).fetchall())
        charges = conn.execute("select count(*) from public.usage_logs where user_id = any(%s::uuid[])",
                               ([u.id for u in users],)).fetchone()[0]
        credits_after = conn.execute("select sum(credits) from public.users_profile where id = any(%s::uuid[])",
                                     ([u.id for u in users],)).fetchone()[0]

    accepted = posted.accepted
    post_wall = posted.wall_s
    applied_wall = (finished - posted.start) if finished else None
    applied_per_s = round(len(result_ids) / applied_wall, 1) if applied_wall else 0.0
    # The drain after the last POST: what the workers do once they no longer share the CPU with the API.
    tail = [(t, n) for t, n in progress.series if t >= posted.finished]
    drain_rate = None
    if finished and len(tail) >= 2 and tail[-1][0] > tail[0][0]:
        drain_rate = round((tail[-1][1] - tail[0][1]) / (tail[-1][0] - tail[0][0]), 1)
    cpu = meter.per_event_ms(len(result_ids))
    cpu["load generator (wrk)"] = round(1000 * posted.cpu_s / len(result_ids), 2)
    samplers = profile_pass(stack, concurrency, profile_seconds) if profile_seconds else []
    # The worker stage from a backlog, without and with batching (the default batch size last, so the stack is
    # left as it started for the benchmarks that follow).
    backlog = [accept_and_drain(stack, events=backlog_events, concurrency=concurrency, batch_size=size)
               for size in (1, stack.settings.inbox_batch_size)] if backlog_events else []
    for drained in backlog:
        drained["ratio_vs_pgbench"] = round(drained["applied_per_s"] / reference["tps"], 3)
    return {
        "backlog": backlog,
        "events": len(result_ids), "users": len(users), "concurrency": concurrency,
        "worker_processes": len(stack.worker_processes), "worker_concurrency": stack.worker_concurrency,
        "sender": posted.command, "statuses": posted.statuses, "post_latency": posted.latency,
        "accepted_per_s": round(accepted / post_wall, 1),
        "applied_per_s": applied_per_s, "applied_wall_s": round(applied_wall, 1) if applied_wall else None,
        "drain_rate_after_posting_per_s": drain_rate,
        "inbox_states": states, "charges": charges, "credits_spent": credits_before - credits_after,
        "cpu_ms_per_event": cpu,
        "cpu_ms_per_event_whole_machine": round(1000 * wall * (os.cpu_count() or 1) / len(result_ids), 2),
        "pgbench": reference, "pgbench_with_attempt_tx": reference_two_tx,
        "ratio_applied_vs_pgbench": round(applied_per_s / reference["tps"], 3),
        "ratio_applied_vs_pgbench_with_attempt_tx": round(applied_per_s / reference_two_tx["tps"], 3),
        "profiles": {name: sampler.summary(API_WORK if name == "api" else WORKER_WORK) for name, sampler in samplers},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--reference-events", type=int, default=8000)
    parser.add_argument("--backlog-events", type=int, default=5000)
    args = parser.parse_args()
    stack = Stack(tag=f"pipe{uuid.uuid4().hex[:4]}").start()
    try:
        print(pretty(run(stack, events=args.events, concurrency=args.concurrency,
                         reference_events=args.reference_events, backlog_events=args.backlog_events)))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
