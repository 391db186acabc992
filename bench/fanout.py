"""WebSocket fan-out: U users × S authenticated sockets each (default 1,000 × 5 = 5,000), every socket subscribed
to its user's own results; C changes/s committed by plain SQL UPDATEs (default 1,000/s) → C × S frames/s to
deliver. Delivered/s, p95 delivery latency (commit → frame received), memory per connection of the API process.
Reference in the same run: the bare flask-sock echo server (bench/realtime_bare_server.py, same gunicorn +
gevent) with the same number of sockets, each echoing one frame per S/C·U seconds, so it moves the same
frames/s.

    .venv/bin/python -m bench.fanout [--users 1000] [--per-user 5] [--rate 1000] [--seconds 10] [--clients 4]

Client side: asyncio + websockets in several processes (`python -m bench.fanout client ...`), each with the
file-descriptor limit raised to its hard limit (resource.setrlimit), as is the parent and so the servers.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import websockets

from bench.common import Sampler, latency_summary
from bench.realtime_latency import start_bare_server
from bench.stack import Stack, pretty, raise_fd_limit, rss_kib
from bench.wsclient import receive, subscribe
from tests.support.processes import ROOT

CONNECT_PARALLEL = 40
DELIVERY_WORK = ("dispatch (api/realtime/hub.py", "deliver (api/realtime/fanout.py", "_write_forever (")


# --- client processes ------------------------------------------------------------------------------------------

async def realtime_client(config: dict) -> dict:
    """Open this process's sockets, report `ready`, record every change frame until told to stop."""
    received: list[tuple[float, float]] = []
    gate = asyncio.Semaphore(CONNECT_PARALLEL)

    async def open_one(n: int, user: dict):
        async with gate:
            return await subscribe(config["url"], config["anon"], user["token"], user["id"], f"fan-{n}",
                                   binding=config.get("binding"))

    sockets = await asyncio.gather(*(open_one(n, u) for n, u in enumerate(config["sockets"])))

    def on_record(record: dict, received_at: float) -> None:
        prompt = record.get("text_prompt") or ""
        if prompt.startswith("t:"):
            received.append((float(prompt[2:]), received_at))

    tasks = [asyncio.create_task(receive(ws, on_record, time.time)) for ws in sockets]
    print(f"ready {len(sockets)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "stop"
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"sockets": len(sockets), "frames": received}


async def echo_client(config: dict) -> dict:
    """Open this process's sockets to the bare echo server; once told, each socket sends one timestamped frame
    every `interval` seconds (staggered) and records the round trip."""
    received: list[tuple[float, float]] = []
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    stop = asyncio.Event()

    async def open_one():
        async with gate:
            return await websockets.connect(config["url"], max_queue=None, ping_interval=None, open_timeout=60)

    sockets = await asyncio.gather(*(open_one() for _ in range(config["count"])))
    print(f"ready {len(sockets)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"

    async def pinger(ws) -> None:
        interval = config["interval"]
        await asyncio.sleep(random.random() * interval)
        next_at = time.time()
        while not stop.is_set():
            sent = time.time()
            await ws.send(f"t:{sent}")
            echoed = await ws.recv()
            received.append((float(echoed[2:]), time.time()))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.time()))

    tasks = [asyncio.create_task(pinger(ws)) for ws in sockets]
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "stop"
    stop.set()
    await asyncio.wait(tasks, timeout=5)
    for ws in sockets:
        await ws.close()
    return {"sockets": len(sockets), "frames": received}


def client_main(config_path: str) -> None:
    raise_fd_limit()
    config = json.loads(Path(config_path).read_text())
    runner = realtime_client if config["mode"] == "realtime" else echo_client
    result = asyncio.run(runner(config))
    print("result " + json.dumps(result), flush=True)


class Clients:
    """`count` client processes, each given its share of the sockets."""

    def __init__(self, configs: list[dict]) -> None:
        self.procs = []
        self.files = []
        for config in configs:
            handle, path = tempfile.mkstemp(prefix="segbase-fanout-", suffix=".json")
            os.write(handle, json.dumps(config).encode())
            os.close(handle)
            self.files.append(path)
            self.procs.append(subprocess.Popen([sys.executable, "-m", "bench.fanout", "client", path], cwd=ROOT,
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))

    def wait_ready(self) -> int:
        total = 0
        for proc in self.procs:
            line = proc.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"fan-out client failed to connect: {line!r}")
            total += int(line.split()[1])
        return total

    def tell(self, word: str) -> None:
        for proc in self.procs:
            proc.stdin.write(word + "\n")
            proc.stdin.flush()

    def results(self) -> list[tuple[float, float]]:
        frames = []
        for proc in self.procs:
            for line in proc.stdout:
                if line.startswith("result "):
                    frames += json.loads(line[7:])["frames"]
            proc.wait(timeout=60)
        for path in self.files:
            os.unlink(path)
        return frames

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def split(items: list, parts: int) -> list[list]:
    return [items[i::parts] for i in range(parts)]


def delivery(frames: list[tuple[float, float]], window: tuple[float, float]) -> dict:
    """Frames whose change was committed inside the window: delivered/s over the window and latency."""
    inside = [(c, r) for c, r in frames if window[0] <= c <= window[1]]
    if not inside:
        return {"frames": 0, "delivered_per_s": 0.0}
    span = max(r for _, r in inside) - window[0]
    return {"frames": len(inside), "delivered_per_s": round(len(inside) / span, 1),
            **latency_summary([r - c for c, r in inside])}


# --- the benchmark ---------------------------------------------------------------------------------------------

def commit_changes(stack: Stack, result_ids: list[str], rate: int, seconds: float, *,
                   ticks_per_s: int = 50) -> tuple[float, float, int]:
    """Commit `rate` single-row UPDATEs per second for `seconds` (`ticks_per_s` transactions/s of rate/ticks_per_s
    rows), each row's text_prompt carrying the wall time just before its commit."""
    per_tick = max(1, rate // ticks_per_s)
    cursor = 0
    changes = 0
    with psycopg.connect(stack.owner_url, autocommit=True) as conn:
        start = time.time()
        tick = 0
        while time.time() - start < seconds:
            due = start + tick / ticks_per_s
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            batch = [result_ids[(cursor + i) % len(result_ids)] for i in range(per_tick)]
            cursor += per_tick
            conn.execute("update public.segmentation_results set text_prompt = %s where id = any(%s::uuid[])",
                         (f"t:{time.time()}", batch))
            changes += len(batch)
            tick += 1
        end = time.time()
    return start, end, changes


def run(stack: Stack, *, users: int = 1000, per_user: int = 5, rate: int = 1000, seconds: float = 10,
        clients: int = 4, profile_seconds: int = 0) -> dict:
    fd_limit = raise_fd_limit()
    bench_users = stack.bulk_users(users, credits=100)
    results = stack.pending_results(bench_users, 1)
    stack.wait_outbox_drained()
    result_ids = [ids[0] for ids in results.values()]
    sockets = [{"id": u.id, "token": u.access_token} for u in bench_users for _ in range(per_user)]
    api_pids = stack.api_worker_pids()
    rss_before = sum(rss_kib(p) for p in api_pids)
    group = Clients([{"mode": "realtime", "url": stack.url, "anon": stack.anon_key(), "sockets": part}
                     for part in split(sockets, clients)])
    try:
        t0 = time.perf_counter()
        connected = group.wait_ready()
        connect_s = time.perf_counter() - t0
        time.sleep(1)
        rss_after = sum(rss_kib(p) for p in api_pids)
        samplers = []
        if profile_seconds:
            samplers = [("api", Sampler(stack.api.pid, min(profile_seconds, int(seconds))), DELIVERY_WORK),
                        ("relay", Sampler(stack.relay_process().pid, min(profile_seconds, int(seconds))),
                         ("publish_batch (",))]
        start, end, changes = commit_changes(stack, result_ids, rate, seconds)
        time.sleep(3)
        group.tell("stop")
        frames = group.results()
    finally:
        group.kill()
    ours = {"sockets": connected, "connect_and_join_s": round(connect_s, 1), "changes_committed": changes,
            "changes_per_s": round(changes / (end - start), 1), "frames_expected": changes * per_user,
            "memory_per_connection_kib": round((rss_after - rss_before) / max(connected, 1), 1),
            "api_rss_mib": {"before": round(rss_before / 1024, 1), "with_sockets": round(rss_after / 1024, 1)},
            **delivery(frames, (start, end))}
    ours["profiles"] = {name: sampler.summary(markers) for name, sampler, markers in samplers}

    bare = bare_reference(stack, connected, frames_per_s=rate * per_user, seconds=seconds, clients=clients)
    return {"users": users, "sockets_per_user": per_user, "fd_limit": fd_limit, "client_processes": clients,
            "segbase": ours, "bare_echo": bare,
            "ratio_delivered_vs_bare": round(ours.get("delivered_per_s", 0) / max(bare.get("delivered_per_s", 1), 1),
                                             3)}


def bare_reference(stack: Stack, count: int, *, frames_per_s: int, seconds: float, clients: int) -> dict:
    proc, port = start_bare_server(stack.settings.redis_url, stack.settings.redis_key("bench", "bare"))
    try:
        pids = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()] or [
            proc.pid]
        rss_before = sum(rss_kib(p) for p in pids)
        interval = max(count / frames_per_s, 0.001)
        group = Clients([{"mode": "echo", "url": f"ws://127.0.0.1:{port}/echo", "count": len(part),
                          "interval": interval} for part in split(list(range(count)), clients)])
        try:
            connected = group.wait_ready()
            time.sleep(1)
            rss_after = sum(rss_kib(p) for p in pids)
            start = time.time()
            group.tell("go")
            time.sleep(seconds)
            end = time.time()
            group.tell("stop")
            frames = group.results()
        finally:
            group.kill()
    finally:
        proc.terminate()
        proc.wait(10)
    return {"sockets": connected, "frames_offered_per_s": frames_per_s,
            "memory_per_connection_kib": round((rss_after - rss_before) / max(connected, 1), 1),
            **delivery(frames, (start, end))}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        client_main(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=5)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    stack = Stack(tag=f"fan{uuid.uuid4().hex[:4]}", workers=0).start()
    try:
        print(pretty(run(stack, users=args.users, per_user=args.per_user, rate=args.rate, seconds=args.seconds,
                         clients=args.clients)))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
