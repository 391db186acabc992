"""WebSocket fan-out: U users × S authenticated sockets each (default 2,000 × 5 = 10,000), every socket subscribed
to its user's own results; C changes/s committed by plain SQL UPDATEs (default 2,000/s) → C × S frames/s to
deliver. Delivered/s, p95 delivery latency (commit → frame received), memory per connection of each API process.
Reference in the same run: the bare flask-sock echo server (bench/realtime_bare_server.py, same gunicorn +
gevent, as many worker processes) with the same number of sockets, each echoing one frame per S/C·U seconds, so
it moves the same frames/s.

    .venv/bin/python -m bench.fanout [--users 2000] [--per-user 5] [--rate 2000] [--seconds 10] [--clients 4]
                                     [--sockets-per-process 5000]

The sockets are spread over ceil(U·S ÷ sockets-per-process) API processes (gunicorn workers of one `segbase api`,
API_WORKERS): a gevent worker is one core, and the per-frame work (routing, encoding, writing) is per process. The
benchmark starts a stack of its own with every socket limit set explicitly (`socket_limits`) and reports them:
the file-descriptor limit each process runs with (the soft RLIMIT_NOFILE raised to the hard limit by the parent,
which the servers inherit, and by `segbase api` itself), API_WORKER_CONNECTIONS and the per-address, per-user and
join-rate caps of docs/REALTIME.md "Limits".

Client side: asyncio + websockets in several processes (`python -m bench.fanout client ...`). CPU time of every
process taking part (API workers, relay, clients, the committing parent) is reported over the change window, so a
saturated client or sender shows.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
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
from bench.stack import Stack, children, pretty, raise_fd_limit, rss_kib
from bench.wsclient import receive, subscribe
from tests.support.processes import ROOT

CONNECT_PARALLEL = 40
CONNECT_ATTEMPTS = 5
DELIVERY_WORK = ("dispatch (api/realtime/hub.py", "dispatch_batch (api/realtime/hub.py",
                 "deliver (api/realtime/fanout.py", "deliver_many (api/realtime/fanout.py", "_write_queued (")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- client processes ------------------------------------------------------------------------------------------

async def opened(connect, retries: list[int]):
    """`await connect()`, tried again (up to CONNECT_ATTEMPTS times, 1 s apart) when the server closed or refused
    the upgrade — on a loaded machine a connection's request can wait past the server's keep-alive timeout before
    it is read — counting every retry in `retries`, which the run reports."""
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            return await connect()
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake):
            if attempt == CONNECT_ATTEMPTS - 1:
                raise
            retries[0] += 1
            await asyncio.sleep(1)


async def realtime_client(config: dict) -> dict:
    """Open this process's sockets, report `ready`, record every change frame until told to stop. Each socket
    heartbeats from its join on (opening thousands can take longer than the server's heartbeat timeout)."""
    received: list[tuple[float, float]] = []
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    retries = [0]
    tasks = []

    def on_record(record: dict, received_at: float) -> None:
        prompt = record.get("text_prompt") or ""
        if prompt.startswith("t:"):
            received.append((float(prompt[2:]), received_at))

    async def open_one(n: int, user: dict):
        async with gate:
            ws = await opened(lambda: subscribe(config["url"], config["anon"], user["token"], user["id"],
                                                f"fan-{n}", binding=config.get("binding")), retries)
        tasks.append(asyncio.create_task(receive(ws, on_record, time.time)))
        return ws

    sockets = await asyncio.gather(*(open_one(n, u) for n, u in enumerate(config["sockets"])))
    print(f"ready {len(sockets)} {retries[0]}", flush=True)
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

    retries = [0]

    async def open_one():
        async with gate:
            return await opened(lambda: websockets.connect(config["url"], max_queue=None, ping_interval=None,
                                                           open_timeout=60), retries)

    sockets = await asyncio.gather(*(open_one() for _ in range(config["count"])))
    print(f"ready {len(sockets)} {retries[0]}", flush=True)
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
        self.connect_retries = 0
        for proc in self.procs:
            line = proc.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"fan-out client failed to connect: {line!r}")
            total += int(line.split()[1])
            self.connect_retries += int(line.split()[2])
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

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

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


def socket_limits(sockets: int, processes: int, per_user: int) -> dict:
    """The settings that cap sockets, raised explicitly for this run (docs/REALTIME.md "Limits"). gunicorn's
    workers accept from one shared listening socket and the split is not exactly even (the run reports it), so
    each process may hold every socket, all from one address, and `per_user` sockets per user."""
    reserve = 200
    return {"api_workers": processes, "api_worker_connections": sockets + reserve,
            "realtime_http_reserve": reserve, "realtime_max_sockets_per_ip": sockets,
            "realtime_max_sockets_per_user": max(per_user, 25), "realtime_joins_per_second": 1000.0}


def fd_limits(pid: int) -> str:
    """The process's "Max open files" (soft/hard), from /proc."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return f"{soft}/{hard}"
    return "?"


def connections_held(pids: list[int], port: int) -> dict[int, int]:
    """How many established TCP connections to `port` each process holds (its WebSockets: the database and Redis
    connections it also holds are to other ports)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 01 = ESTABLISHED
                inodes.add(fields[9])
    held = {}
    for pid in pids:
        count = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                count += 1
        held[pid] = count
    return held


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuMeter:
    """CPU seconds of named processes between `start()` and `stop()`, as cores used over that wall time."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups

    def _read(self) -> dict[str, float]:
        out = {}
        for name, pids in self.groups.items():
            total = 0.0
            for pid in pids:
                try:
                    total += cpu_s(pid)
                except OSError:
                    pass
            out[name] = total
        out["bench parent (commits the changes)"] = sum(os.times()[:2])
        return out

    def start(self) -> None:
        self.t0, self.before = time.perf_counter(), self._read()

    def stop(self) -> dict:
        after, wall = self._read(), time.perf_counter() - self.t0
        self.used = {name: after[name] - self.before[name] for name in after}
        return {"wall_s": round(wall, 1), "cores": {name: round(used / wall, 2) for name, used in self.used.items()},
                "machine_cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}

    def per_frame_us(self, frames: int) -> dict:
        """CPU µs per delivered frame of each group (the window covers the delivery tail when every frame is in)."""
        return {name: round(used * 1e6 / max(frames, 1), 1) for name, used in self.used.items()}


def run(stack: Stack | None = None, *, users: int = 2000, per_user: int = 5, rate: int = 2000, seconds: float = 10,
        clients: int = 4, profile_seconds: int = 0, sockets_per_process: int = 5000, reference: bool = True) -> dict:
    """bench/run.py's entry point; the stack argument is unused: the run needs API processes and socket limits of
    its own (`socket_limits`), so it starts its own stack."""
    fd_limit = raise_fd_limit()
    sockets = users * per_user
    processes = max(1, math.ceil(sockets / sockets_per_process))
    limits = socket_limits(sockets, processes, per_user)
    own = Stack(tag=f"fan{uuid.uuid4().hex[:4]}", workers=0, api_workers=processes, overrides=limits).start()
    try:
        result = measure(own, users=users, per_user=per_user, rate=rate, seconds=seconds, clients=clients,
                         profile_seconds=profile_seconds, reference=reference)
    finally:
        own.stop()
    result["socket_limits"] = {"sockets_per_process (planned)": sockets_per_process, "api_processes": processes,
                               "fd_limit (bench parent, inherited)": fd_limit, **limits,
                               "realtime_max_sockets (per process)": limits["api_worker_connections"]
                               - limits["realtime_http_reserve"]}
    return result


def measure(stack: Stack, *, users: int, per_user: int, rate: int, seconds: float, clients: int,
            profile_seconds: int, reference: bool = True) -> dict:
    bench_users = stack.bulk_users(users, credits=100)
    results = stack.pending_results(bench_users, 1)
    stack.wait_outbox_drained()
    result_ids = [ids[0] for ids in results.values()]
    sockets = [{"id": u.id, "token": u.access_token} for u in bench_users for _ in range(per_user)]
    api_pids = stack.api_worker_pids()
    rss_before = {pid: rss_kib(pid) for pid in api_pids}
    group = Clients([{"mode": "realtime", "url": stack.url, "anon": stack.anon_key(), "sockets": part}
                     for part in split(sockets, clients)])
    try:
        t0 = time.perf_counter()
        connected = group.wait_ready()
        connect_s = time.perf_counter() - t0
        time.sleep(1)
        rss_after = {pid: rss_kib(pid) for pid in api_pids}
        per_process = []
        for pid, held in connections_held(api_pids, stack.api.port).items():
            per_process.append({"pid": pid, "sockets": held, "fd_limit (soft/hard)": fd_limits(pid),
                                "rss_mib": {"before": round(rss_before[pid] / 1024, 1),
                                            "with_sockets": round(rss_after[pid] / 1024, 1)},
                                "memory_per_connection_kib": round((rss_after[pid] - rss_before[pid])
                                                                   / max(held, 1), 1)})
        cpu = CpuMeter({"api workers": api_pids, "relay": [stack.relay_process().pid],
                        f"clients ({clients} processes)": group.pids()})
        cpu.start()
        start, end, changes = commit_changes(stack, result_ids, rate, seconds)
        time.sleep(3)
        cpu_figures = cpu.stop()
        samplers = []
        if profile_seconds:  # a stream of its own after the measured one: py-spy's sampling takes CPU from it
            samplers = [("api", Sampler(stack.api.pid, profile_seconds), DELIVERY_WORK),
                        ("relay", Sampler(stack.relay_process().pid, profile_seconds), ("publish_batch (",))]
            commit_changes(stack, result_ids, rate, profile_seconds + 1)
            for _, sampler, _ in samplers:
                sampler.wait()
        group.tell("stop")
        frames = group.results()
    finally:
        group.kill()
    growth = sum(rss_after.values()) - sum(rss_before.values())
    ours = {"sockets": connected, "api_processes": len(api_pids), "connect_and_join_s": round(connect_s, 1),
            "connect_retries": group.connect_retries,
            "changes_committed": changes, "changes_per_s": round(changes / (end - start), 1),
            "frames_expected": changes * per_user,
            "memory_per_connection_kib": round(growth / max(connected, 1), 1),
            "api_rss_mib": {"before": round(sum(rss_before.values()) / 1024, 1),
                            "with_sockets": round(sum(rss_after.values()) / 1024, 1)},
            "per_process": per_process, "cpu_during_changes": cpu_figures,
            **delivery(frames, (start, end))}
    cpu_figures["cpu_us_per_delivered_frame"] = cpu.per_frame_us(ours.get("frames", 0))
    ours["profiles"] = {name: sampler.summary(markers) for name, sampler, markers in samplers}

    if not reference:  # a quick look at segbase alone (--no-reference); the report always has the reference
        return {"users": users, "sockets_per_user": per_user, "client_processes": clients, "segbase": ours}
    bare = bare_reference(stack, connected, frames_per_s=rate * per_user, seconds=seconds, clients=clients,
                          workers=len(api_pids))
    return {"users": users, "sockets_per_user": per_user, "fd_limit": raise_fd_limit(), "client_processes": clients,
            "segbase": ours, "bare_echo": bare,
            "ratio_delivered_vs_bare": round(ours.get("delivered_per_s", 0) / max(bare.get("delivered_per_s", 1), 1),
                                             3)}


def bare_reference(stack: Stack, count: int, *, frames_per_s: int, seconds: float, clients: int,
                   workers: int = 1) -> dict:
    proc, port = start_bare_server(stack.settings.redis_url, stack.settings.redis_key("bench", "bare"), workers)
    try:
        pids = children(proc.pid) or [proc.pid]
        rss_before = sum(rss_kib(p) for p in pids)
        interval = max(count / frames_per_s, 0.001)
        group = Clients([{"mode": "echo", "url": f"ws://127.0.0.1:{port}/echo", "count": len(part),
                          "interval": interval} for part in split(list(range(count)), clients)])
        try:
            connected = group.wait_ready()
            time.sleep(1)
            rss_after = sum(rss_kib(p) for p in pids)
            cpu = CpuMeter({"bare workers": pids, f"clients ({clients} processes)": group.pids()})
            cpu.start()
            start = time.time()
            group.tell("go")
            time.sleep(seconds)
            end = time.time()
            cpu_figures = cpu.stop()
            group.tell("stop")
            frames = group.results()
        finally:
            group.kill()
    finally:
        proc.terminate()
        proc.wait(10)
    echoed = delivery(frames, (start, end))
    cpu_figures["cpu_us_per_delivered_frame"] = cpu.per_frame_us(echoed.get("frames", 0))
    return {"sockets": connected, "connect_retries": group.connect_retries, "worker_processes": len(pids),
            "frames_offered_per_s": frames_per_s,
            "memory_per_connection_kib": round((rss_after - rss_before) / max(connected, 1), 1),
            "cpu_during_echo": cpu_figures, **echoed}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        client_main(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--per-user", type=int, default=5)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sockets-per-process", type=int, default=5000)
    parser.add_argument("--profile-seconds", type=int, default=0)
    parser.add_argument("--no-reference", action="store_true", help="skip the bare echo reference (quick looks)")
    args = parser.parse_args()
    print(pretty(run(users=args.users, per_user=args.per_user, rate=args.rate, seconds=args.seconds,
                     clients=args.clients, sockets_per_process=args.sockets_per_process,
                     profile_seconds=args.profile_seconds, reference=not args.no_reference)))


if __name__ == "__main__":
    main()
