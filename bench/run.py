"""`make bench`: start the benchmark's own stack, run every benchmark with its same-run reference, and write the
report (date, machine, versions, settings, commands, raw numbers, ratios, profiles) to bench/results/BENCHMARKS.md,
which git ignores; `make bench-docs` (`--output docs/BENCHMARKS.md`) updates the tracked report on purpose.

    .venv/bin/python -m bench.run [--quick] [--output docs/BENCHMARKS.md] [--json results.json]
        [--only pipeline,e2e,fanout,rls,auth,dispatch,storage,rest_embed,realtime_rls,scaling]

`--quick` is a tiny run of everything (the smoke test's sizes); its figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from bench import (auth, dispatch, e2e_latency, fanout, pipeline, realtime_rls, rest_embed, rls, scaling,
                   storage)
from bench.common import py_spy_path
from bench.report import SCALING_PNG, render
from bench.sender import wrk_version
from bench.stack import BENCH_REALTIME_LIMITS, Stack, raise_fd_limit
from tests.support.processes import ROOT

FULL = {
    "pipeline": {"events": 20_000, "concurrency": 32, "reference_events": 4000, "profile_seconds": 15,
                 "backlog_events": 5000},
    "e2e": {"rates": (200, 500, 1000), "seconds": 6, "profile_seconds": 5},
    "fanout": {"users": 2000, "per_user": 5, "rate": 2000, "seconds": 10, "clients": 4, "profile_seconds": 8,
               "sockets_per_process": 5000},
    "rls": {"users": 10_000, "per_user": 100, "queries": 2000, "http_seconds": 10, "profile_seconds": 8},
    "auth": {"requests": 400, "concurrency": 20, "users": 40, "hashes": 60, "verify_calls": 5000,
             "profile_seconds": 8},
    "dispatch": {"rate": 100, "seconds": 20, "claim_jobs": 4000, "claim_workers": 4, "claim_batches": (1, 10)},
    "storage": {"size_mb": 100, "repeats": 9},
    "rest_embed": {"users": 1000, "per_user": 100, "seconds": 5, "rounds": 3, "requests": 2000},
    "realtime_rls": {"users": 100, "rate": 20, "seconds": 8, "clients": 2, "missed": 100},
    "scaling": {"events": 3000, "connections": 32, "workers": (1, 2, 4), "api_processes": (1, 2),
                "rates": (50, 100, 200)},
}
QUICK = {
    "pipeline": {"events": 60, "concurrency": 4, "reference_events": 8, "profile_seconds": 0,
                 "backlog_events": 30},
    "e2e": {"rates": (20,), "seconds": 1, "profile_seconds": 0},
    "fanout": {"users": 4, "per_user": 2, "rate": 20, "seconds": 1, "clients": 1, "profile_seconds": 0,
               "sockets_per_process": 4},
    "rls": {"users": 30, "per_user": 25, "queries": 10, "http_seconds": 1, "profile_seconds": 0},
    "auth": {"requests": 4, "concurrency": 2, "users": 2, "hashes": 2, "verify_calls": 10, "profile_seconds": 0},
    "dispatch": {"rate": 20, "seconds": 1, "claim_jobs": 40, "claim_workers": 4, "claim_batches": (1, 10)},
    "storage": {"size_mb": 2, "repeats": 1},
    "rest_embed": {"users": 20, "per_user": 25, "seconds": 1, "rounds": 1, "requests": 10},
    "realtime_rls": {"users": 3, "rate": 5, "seconds": 1, "clients": 1, "missed": 3},
    "scaling": {"events": 40, "connections": 4, "workers": (2,), "api_processes": (1,), "rates": (20,)},
}
RUNNERS = {"pipeline": pipeline.run, "e2e": e2e_latency.run, "fanout": fanout.run, "rls": rls.run,
           "auth": auth.run, "dispatch": dispatch.run, "storage": storage.run, "scaling": scaling.run,
           "rest_embed": rest_embed.run, "realtime_rls": realtime_rls.run}
PARTIAL = Path("/tmp/segbase-bench-partial.json")
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "BENCHMARKS.md"  # untracked (.gitignore): a run never dirties docs/
# rls last: its 1M rows would weigh on the others; dispatch runs on stacks of its own
ORDER = ("pipeline", "e2e", "fanout", "auth", "dispatch", "storage", "rest_embed", "realtime_rls", "scaling",
         "rls")


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    packages = {name: version(name) for name in ("flask", "flask-sock", "gunicorn", "gevent", "celery", "kombu",
                                                 "redis", "psycopg", "SQLAlchemy", "websockets", "httpx",
                                                 "argon2-cffi", "PyJWT")}
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "pgbench": _version([pipeline.pgbench_path(), "--version"]),
            "wrk": wrk_version(),
            "py-spy": _version([py_spy_path(), "--version"]) if py_spy_path() else "not installed",
            "load_average_at_start": os.getloadavg(), "packages": packages}


def run_all(only: tuple[str, ...], sizes: dict) -> dict:
    fd_limit = raise_fd_limit()
    stack = Stack(tag=f"run{uuid.uuid4().hex[:4]}").start()
    report = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "fd_limit": fd_limit,
              "machine": machine(), "versions": stack.versions(), "settings": _settings(stack), "sizes": sizes,
              "results": {}, "durations_s": {}}
    try:
        for name in ORDER:
            if name not in only:
                continue
            started = time.perf_counter()
            print(f"bench: {name} …", flush=True)
            report["results"][name] = RUNNERS[name](stack, **sizes[name])
            report["durations_s"][name] = round(time.perf_counter() - started, 1)
            print(f"bench: {name} done in {report['durations_s'][name]} s", flush=True)
            PARTIAL.write_text(json.dumps(report, indent=1, default=str))  # a later failure keeps these
    finally:
        stack.stop()
    report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report["load_average_at_end"] = os.getloadavg()
    return report


def _settings(stack: Stack) -> dict:
    s = stack.settings
    return {"api_workers": s.api_workers, "api_worker_connections": s.api_worker_connections,
            "db_pool_size (per API process)": s.db_pool_size, "worker processes": len(stack.worker_processes),
            "worker_concurrency (prefork, per process)": s.worker_concurrency,
            "auth_hash_threads": s.auth_hash_threads, "log_level": s.log_level,
            "realtime_send_queue_size": s.realtime_send_queue_size,
            "realtime limits (raised for benchmarks)": {name: getattr(s, name) for name in BENCH_REALTIME_LIMITS},
            "webhook signing": "off (X-API-Key only)" if s.webhook_signing_secret is None else "on"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test); figures mean nothing")
    parser.add_argument("--only", default=",".join(ORDER))
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--json", default="", help="also save the raw report here")
    parser.add_argument("--render", default="", help="render a saved report (--json, or the partial file) only")
    args = parser.parse_args()
    if args.render:  # re-render a saved report (e.g. after a change to bench/report.py), no new measurement
        saved = json.loads(Path(args.render).read_text())
        Path(args.output).write_text(render(saved))
        if "scaling" in saved.get("results", {}):
            scaling.plot(saved["results"]["scaling"], Path(args.output).parent / SCALING_PNG)
        print(f"bench: wrote {args.output} from {args.render}")
        return
    only = tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = set(only) - set(RUNNERS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    report = run_all(only, QUICK if args.quick else FULL)
    report["command"] = "make bench" if not args.quick and only == ORDER else " ".join(
        ["python -m bench.run", *sys.argv[1:]])
    PARTIAL.write_text(json.dumps(report, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(render(report))
    print(f"bench: wrote {args.output}")
    if "scaling" in report["results"]:
        scaling.plot(report["results"]["scaling"], Path(args.output).parent / SCALING_PNG)
        print(f"bench: wrote {Path(args.output).parent / SCALING_PNG}")


if __name__ == "__main__":
    main()
