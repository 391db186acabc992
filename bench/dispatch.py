"""Dispatch benchmarks, each against a reference measured in the same run on its own stack:

1. Push latency: results inserted at a fixed rate (open loop, one transaction each, as their owner) → the backend
   (an HTTP receiver in its own process) receives the signed job. Latency = receiver arrival − the insert's commit
   returning. Reference: the same inserts also NOTIFY a channel that a minimal relay (one process: LISTEN, then
   POST at once) forwards to the same receiver — the floor of any "PostgreSQL → HTTP" push.
2. Claim throughput: N queued jobs claimed over HTTP by 4 pull workers (threads, `claim-jobs` with `max` = the
   batch) until the queue is empty. Reference: the same claims as direct SQL (`internal.claim_dispatch_jobs`) on
   4 connections, after re-queueing the same jobs.

    .venv/bin/python -m bench.dispatch [--quick]        (also run by `make bench`)
"""
from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg

from bench.common import latency_summary
from bench.stack import WEBHOOK_KEY, Stack
from db.engine import create_app_engine
from db.uow import Caller, unit_of_work
from tests.support.processes import SegbaseProcess, free_port, wait_for

SECRET = "whsec_" + base64.b64encode(b"segbase-bench-dispatch-secret-32").decode()
REFERENCE_CHANNEL = "bench_dispatch_reference"
RELAY_THREADS = 8  # the second push run: the releaser delivering itself (DISPATCH_RELAY_THREADS, docs/DISPATCH.md)
WARMUP_JOBS = 20
INSERT = ("insert into public.segmentation_results (source_image_url, text_prompt) "
          "values ('https://img.example/bench.png', 'bench') returning id")


# --- the receiver and the reference relay (each in its own process) ----------------------------------------------
def _receive(port: int, arrivals: multiprocessing.Queue, ready: Any) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 — the http.server naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            arrivals.put((json.loads(body)["data"]["job_id"], time.time()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a sender that stops mid-request (the reference relay is terminated) is not a finding

    server = Server(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


def _reference_relay(conninfo: str, url: str, ready: Any) -> None:
    """The least a push can do: wake on NOTIFY, POST the id. No queue table, no Celery, no signature."""
    with psycopg.connect(conninfo, autocommit=True) as conn, httpx.Client() as client:
        conn.execute(f"listen {REFERENCE_CHANNEL}")
        ready.set()
        for note in conn.notifies():
            client.post(url, json={"data": {"job_id": note.payload}})


def _insert_at_rate(engine, users: list[str], rate: float, seconds: float, notify: bool,
                    senders: int = 4) -> dict[str, Any]:
    """Open loop: one insert per 1/rate s, each its own transaction as its owner, spread over `senders` threads (a
    commit's wait must not hold back the next send); returns {id: commit time}, the rate achieved and whether
    sends kept to their schedule."""
    committed: dict[str, float] = {}
    lags: list[float] = []
    lock = threading.Lock()
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05

    def sender(offset: int) -> None:
        for n in range(offset, total, senders):
            scheduled = start + n / rate
            pause = scheduled - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            lag = max(0.0, time.perf_counter() - scheduled)
            user = users[n % len(users)]
            with unit_of_work(engine, Caller("authenticated", {"sub": user, "role": "authenticated"})) as uow:
                result_id = str(uow.execute(INSERT).scalar_one())
                if notify:
                    uow.execute("select pg_notify(:channel, :id)", {"channel": REFERENCE_CHANNEL, "id": result_id})
            at = time.time()
            with lock:
                committed[result_id] = at
                lags.append(lag)

    threads = [threading.Thread(target=sender, args=(offset,)) for offset in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {"committed": committed, "offered_per_s": round(len(committed) / elapsed, 1),
            "sustained": sorted(lags)[int(0.99 * (len(lags) - 1))] < 4 / rate if lags else True}


def _collect(arrivals: multiprocessing.Queue, committed: dict[str, float], timeout: float) -> list[float]:
    got: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(committed) and time.monotonic() < deadline:
        try:
            job_id, at = arrivals.get(timeout=1)
        except queue.Empty:
            continue
        if job_id in committed:
            got.setdefault(job_id, at)  # a repeat delivery (same job) is not a second sample
    return [got[j] - committed[j] for j in got]


def push_latency(rate: float, seconds: float, users: int = 20, relay_threads: int | None = None) -> dict[str, Any]:
    """Push latency with the default DISPATCH_RELAY_THREADS, or with `relay_threads` (0: every attempt is a Celery
    task on the workers)."""
    port = free_port()
    context = multiprocessing.get_context("spawn")
    arrivals = context.Queue()
    receiver_ready = context.Event()
    receiver = context.Process(target=_receive, args=(port, arrivals, receiver_ready), daemon=True)
    receiver.start()
    receiver_ready.wait(30)
    url = f"http://127.0.0.1:{port}/jobs"
    stack = Stack(tag="dpush", relay=False, workers=2, worker_concurrency=4,
                  overrides={"dispatch_mode": "push", "dispatch_url": url, "dispatch_signing_secret": SECRET,
                             "dispatch_max_in_flight": 64,
                             **({} if relay_threads is None else {"dispatch_relay_threads": relay_threads})}).start()
    relay = None
    reference = None
    try:
        owners = [u.id for u in stack.bulk_users(users, credits=10_000_000, tokens=False)]
        engine = create_app_engine(stack.settings, pool_size=4, application_name="bench-dispatch-sender")
        # Reference first, while no releaser runs; its jobs are then deleted so segbase never pushes them.
        relay_ready = context.Event()
        reference = context.Process(target=_reference_relay, args=(stack.owner_url, url, relay_ready), daemon=True)
        reference.start()
        relay_ready.wait(30)
        _collect(arrivals, _insert_at_rate(engine, owners, rate, WARMUP_JOBS / rate, notify=True)["committed"], 60)
        ref_sent = _insert_at_rate(engine, owners, rate, seconds, notify=True)
        ref_latencies = _collect(arrivals, ref_sent["committed"], timeout=60)
        reference.terminate()
        with stack.owner() as conn:
            conn.execute("delete from public.segmentation_results")
        relay = SegbaseProcess(stack.settings, "relay").start()
        stack.processes.append(relay)
        wait_for(lambda: "dispatch releaser active" in relay.log_text() or not relay.alive(), 60,
                 message="the dispatch releaser")
        # Warm-up, not measured: each prefork child makes its engine and HTTP client on its first job.
        warm = _insert_at_rate(engine, owners, rate, WARMUP_JOBS / rate, notify=False)
        _collect(arrivals, warm["committed"], timeout=60)
        sent = _insert_at_rate(engine, owners, rate, seconds, notify=False)
        latencies = _collect(arrivals, sent["committed"], timeout=120)
        engine.dispose()
        ours, ref = latency_summary(latencies), latency_summary(ref_latencies)
        return {"rate_per_s": rate, "seconds": seconds, "relay_threads": stack.settings.dispatch_relay_threads,
                "jobs": len(sent["committed"]), "received": len(latencies),
                "offered_per_s": sent["offered_per_s"], "sustained": sent["sustained"], "segbase": ours,
                "reference_notify_relay": ref, "reference_received": len(ref_latencies),
                "ratio_p99_vs_reference": round(ours["p99_ms"] / max(ref["p99_ms"], 0.01), 2),
                "ratio_p50_vs_reference": round(ours["p50_ms"] / max(ref["p50_ms"], 0.01), 2),
                "goal_p99_ms": 100}
    finally:
        if reference is not None and reference.is_alive():
            reference.terminate()
        stack.stop()
        receiver.terminate()


def _drain(workers: int, claim) -> tuple[int, float, set[str]]:
    """Run `workers` threads calling `claim(worker_name)` (→ job ids) until each gets none; (jobs, seconds, ids)."""
    claimed: list[list[str]] = [[] for _ in range(workers)]
    barrier = threading.Barrier(workers + 1)

    def loop(n: int) -> None:
        barrier.wait()
        while ids := claim(f"bench-{n}"):
            claimed[n] += ids

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = [job_id for ids in claimed for job_id in ids]
    return len(every), elapsed, set(every)


def claim_throughput(jobs: int, workers: int, batches: tuple[int, ...], users: int = 200) -> dict[str, Any]:
    stack = Stack(tag="dpull", relay=False, workers=0, overrides={"dispatch_mode": "pull"}).start()
    try:
        owners = [u.id for u in stack.bulk_users(users, credits=10_000_000, tokens=False)]
        with stack.owner() as conn:
            conn.execute("insert into public.segmentation_results (user_id, source_image_url) "
                         "select (%s::uuid[])[1 + g %% %s], 'https://img.example/q.png' "
                         "from generate_series(0, %s - 1) g", (owners, len(owners), jobs))
        runs = []
        for batch in batches:
            requeue(stack)
            clients = [httpx.Client(timeout=60) for _ in range(workers)]

            def over_http(worker: str, batch: int = batch) -> list[str]:
                client = clients[int(worker.rsplit("-", 1)[1])]
                response = client.post(f"{stack.url}/functions/v1/claim-jobs", headers={"X-API-Key": WEBHOOK_KEY},
                                       json={"max": batch, "lease_seconds": 600, "worker_id": worker})
                response.raise_for_status()
                return [job["job_id"] for job in response.json()["jobs"]]

            http_jobs, http_s, http_ids = _drain(workers, over_http)
            for client in clients:
                client.close()
            requeue(stack)
            connections = [psycopg.connect(stack.owner_url, autocommit=True) for _ in range(workers)]

            def over_sql(worker: str, batch: int = batch) -> list[str]:
                conn = connections[int(worker.rsplit("-", 1)[1])]
                rows = conn.execute("select result_id::text from internal.claim_dispatch_jobs(%s, 600, %s)",
                                    (batch, worker)).fetchall()
                return [row[0] for row in rows]

            sql_jobs, sql_s, _ = _drain(workers, over_sql)
            for conn in connections:
                conn.close()
            runs.append({"batch": batch, "jobs": jobs, "claimed_http": http_jobs,
                         "unique_http": len(http_ids) == http_jobs, "http_per_s": round(http_jobs / http_s, 1),
                         "claimed_sql": sql_jobs, "sql_per_s": round(sql_jobs / sql_s, 1),
                         "ratio_http_vs_sql": round((http_jobs / http_s) / max(sql_jobs / sql_s, 0.01), 2)})
        return {"workers": workers, "runs": runs}
    finally:
        stack.stop()


def requeue(stack: Stack) -> None:
    with stack.owner() as conn:
        conn.execute("update internal.dispatch_jobs set state = 'queued', attempt_id = null, worker_id = null, "
                     "due_at = enqueued_at, attempts = 0, first_dispatched_at = null where state <> 'finished'")
        conn.execute("vacuum analyze internal.dispatch_jobs")


def run(stack: Stack | None = None, *, rate: float, seconds: float, claim_jobs: int, claim_workers: int,
        claim_batches: tuple[int, ...]) -> dict[str, Any]:
    """Both benchmarks, each on a stack of its own (they need DISPATCH_MODE push/pull; `stack` is not used)."""
    return {"push_latency": push_latency(rate, seconds),
            "push_latency_relay_threads": push_latency(rate, seconds, relay_threads=RELAY_THREADS),
            "claim": claim_throughput(claim_jobs, claim_workers, claim_batches)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = (dict(rate=20, seconds=1, claim_jobs=40, claim_workers=4, claim_batches=(1, 10)) if args.quick else
             dict(rate=100, seconds=20, claim_jobs=4000, claim_workers=4, claim_batches=(1, 10)))
    print(json.dumps(run(**sizes), indent=1))


if __name__ == "__main__":
    main()
