"""Scaling: applied events/s with 1, 2 and 4 worker processes (`segbase worker --concurrency 2` each) behind 1
and 2 API processes (API_WORKERS), and CPU per event as the offered load grows (1 API process, 2 worker
processes, wrk in open loop at each rate, then closed loop = as fast as it goes). Each configuration runs on a
stack of its own; the sender is wrk (bench/sender.py). bench/report.py renders the table, `plot()` the PNG.

    .venv/bin/python -m bench.scaling [--events 3000] [--rates 50,100,200]
"""
from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path

from bench.common import CpuMeter
from bench.pipeline import WEBHOOK_PATH, Progress, done_body, process_groups
from bench.sender import Wrk
from bench.stack import WEBHOOK_KEY, Stack, pretty


def one_load(stack: Stack, *, events: int, connections: int, rate: float = 0) -> dict:
    """`events` done events (fresh results) through the stack; applied/s and CPU per event by process group."""
    users = stack.bulk_users(max(1, events // 100), credits=10_000, tokens=False)
    result_ids = [r for ids in stack.pending_results(users, 100).values() for r in ids][:events]
    stack.wait_outbox_drained()
    meter = CpuMeter(process_groups(stack)).start()
    progress = Progress(stack, result_ids).start()
    sent = Wrk(stack.url + WEBHOOK_PATH, [done_body(r) for r in result_ids], connections=connections, rate=rate,
               headers={"X-API-Key": WEBHOOK_KEY}).run()
    progress.thread.join(timeout=900)
    progress.stop.set()
    meter.stop()
    finished = next((t for t, n in progress.series if n >= len(result_ids)), None)
    applied_wall = (finished - sent.start) if finished else None
    cpu = meter.per_event_ms(len(result_ids))
    cpu.pop("postgres backends (other: progress poll, owner)", None)
    cpu.pop("bench process (progress poll)", None)
    system = round(sum(cpu.values()), 2)
    cpu["load generator (wrk)"] = round(1000 * sent.cpu_s / len(result_ids), 2)
    stack.wait_inbox_drained()
    return {"offered_per_s": rate or None, "events": len(result_ids), "accepted": sent.accepted,
            "accepted_per_s": round(sent.accepted / sent.wall_s, 1) if sent.wall_s else 0.0,
            "applied_per_s": round(len(result_ids) / applied_wall, 1) if applied_wall else 0.0,
            "cpu_ms_per_event": cpu, "segbase_cpu_ms_per_event": system,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def warm(stack: Stack, connections: int) -> None:
    one_load(stack, events=max(4 * connections, 20), connections=connections)


def run(stack: Stack | None = None, *, events: int = 3000, connections: int = 32, workers: tuple[int, ...] = (1, 2, 4),
        api_processes: tuple[int, ...] = (1, 2), rates: tuple[int, ...] = (50, 100, 200)) -> dict:
    """`stack` is unused (each configuration needs its own); the argument keeps bench/run.py's calling shape."""
    configurations = []
    cpu_by_load = []
    for apis in api_processes:
        own = Stack(tag=f"scale{uuid.uuid4().hex[:4]}", api_workers=apis, workers=workers[0]).start()
        try:
            for count in workers:
                if count != len(own.worker_processes):
                    own.stop_workers()
                    own.workers = count
                    own.start_workers()
                warm(own, connections)
                result = one_load(own, events=events, connections=connections)
                configurations.append({"api_processes": apis, "worker_processes": count,
                                       "worker_concurrency": own.worker_concurrency, **result})
                if apis == api_processes[0] and count == workers[min(1, len(workers) - 1)]:
                    for rate in rates:
                        cpu_by_load.append(one_load(own, events=max(int(rate * 8), 20),
                                                    connections=max(4, min(200, rate // 5)), rate=rate))
                    cpu_by_load.append(result)  # closed loop: as fast as it goes
        finally:
            own.stop()
    return {"events": events, "connections": connections, "configurations": configurations,
            "cpu_by_load": cpu_by_load}


def plot(result: dict, path: Path) -> None:
    """Two panels: applied/s by worker processes (a line per API process count); segbase CPU ms per event by
    applied events/s."""
    # local imports: only the report's plot needs matplotlib (a test extra), never the servers
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot  # after use("Agg"): no display on a server

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4), dpi=100)
    for apis in sorted({c["api_processes"] for c in result["configurations"]}):
        rows = [c for c in result["configurations"] if c["api_processes"] == apis]
        left.plot([c["worker_processes"] for c in rows], [c["applied_per_s"] for c in rows], marker="o",
                  label=f"{apis} API process{'es' if apis > 1 else ''}")
    left.set_xlabel("worker processes (concurrency 2 each)")
    left.set_ylabel("applied events/s")
    left.set_xticks(sorted({c["worker_processes"] for c in result["configurations"]}))
    left.set_ylim(bottom=0)
    left.legend()
    left.set_title("Throughput (wrk, closed loop)")
    loads = result["cpu_by_load"]
    right.plot([r["applied_per_s"] for r in loads], [r["segbase_cpu_ms_per_event"] for r in loads], marker="o")
    for r in loads:
        right.annotate(f"{r['offered_per_s']:g}/s" if r["offered_per_s"] else "max", (r["applied_per_s"],
                       r["segbase_cpu_ms_per_event"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    right.set_xlabel("applied events/s (the second configuration of the left panel)")
    right.set_ylabel("segbase CPU ms per event")
    right.set_ylim(bottom=0)
    right.set_title("CPU per event as load grows")
    figure.suptitle("segbase pipeline scaling on 2 shared cores (make bench)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rates", default="50,100,200")
    parser.add_argument("--plot", default="", help="also draw the PNG here")
    args = parser.parse_args()
    started = time.monotonic()
    result = run(events=args.events, rates=tuple(int(r) for r in args.rates.split(",")))
    result["duration_s"] = round(time.monotonic() - started, 1)
    print(pretty(result))
    if args.plot:
        plot(result, Path(args.plot))


if __name__ == "__main__":
    main()
