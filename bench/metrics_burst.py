"""A burst through the whole stack, then the operator's view of it: the segbase lines of the API's /metrics, the
worker's and the relay's metrics endpoints, and `segbase status`.

    .venv/bin/python -m bench.metrics_burst [--results 300] [--users 10]

Scratch database (dropped afterwards), its own INSTANCE_ID; API + 2 workers + relay, one WebSocket subscriber
(service_role) for every change, each result driven pending → processing → done by two webhooks.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from api.tokens import api_key
from db.engine import create_app_engine
from tests.support.database import (
    create_database,
    drop_database,
    make_test_settings,
    migrate_serialised,
)
from tests.support.factories import create_user
from tests.support.pipeline import event_body, post_event, start_worker, submit_results
from tests.support.processes import (
    ROOT,
    ApiProcess,
    SegbaseProcess,
    free_port,
    wait_for,
)
from tests.support.realtime import PhoenixSocket, wait_relay_active

SHOWN = ("segbase_http_requests_total", "segbase_http_request_duration_seconds_count", "segbase_webhook",
         "segbase_tasks_total", "segbase_task_duration_seconds_sum", "segbase_task_duration_seconds_count",
         "segbase_inbox", "segbase_outbox", "segbase_celery", "segbase_pipeline", "segbase_websocket",
         "segbase_cleanup", "segbase_results_timed_out")


def excerpt(body: str) -> str:
    return "\n".join(line for line in body.splitlines()
                     if line.startswith(SHOWN) and "_created" not in line and "/metrics" not in line)


def status_text(settings) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBASE_")}
    env.update(settings.to_env(), SEGBASE_ENV_FILE="")
    return subprocess.run([sys.executable, "-m", "segbase", "status", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=300)
    parser.add_argument("--users", type=int, default=10)
    args = parser.parse_args()
    name = f"segbase_bench_metrics_{uuid.uuid4().hex[:8]}"
    worker_port, relay_port = free_port(), free_port()
    settings = make_test_settings(create_database(name), f"bm{uuid.uuid4().hex[:6]}", inbox_sweep_enabled=False,
                                  worker_metrics_port=worker_port, relay_metrics_port=relay_port)
    processes = []
    try:
        migrate_serialised(settings)
        api = ApiProcess(settings).start()
        processes.append(api)
        processes.extend(start_worker(settings, f"bm-worker-{n}") for n in (1, 2))
        relay = SegbaseProcess(settings, "relay").start()
        processes.append(relay)
        wait_relay_active(relay)
        service = api_key(settings, "service_role")
        socket = PhoenixSocket(api.url, service)
        socket.join("realtime:metrics", [{"event": "*", "schema": "public", "table": "segmentation_results"}],
                    service)

        changes = []

        def read() -> None:  # a client keeps reading, so its socket's send queue never fills
            try:
                while True:
                    message = socket.recv(timeout=120)
                    if message["event"] == "postgres_changes":
                        changes.append(message)
            except Exception:  # noqa: BLE001 — the socket closes at the end
                return
        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        engine = create_app_engine(settings, pool_size=2)
        per_user = args.results // args.users
        users = [create_user(settings, credits=per_user) for _ in range(args.users)]
        results = [rid for user in users for rid in submit_results(engine, user, per_user)]

        def drive(result_id: str) -> None:
            with httpx.Client(timeout=30) as client:
                for status in ("processing", "done"):
                    post_event(client, api.url, event_body(result_id, status))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(drive, results))
        wait_for(lambda: (lag := json.loads(status_text(settings)))["inbox_unapplied"] == 0
                 and lag["outbox_unsent"] == 0, timeout=120, interval=1, message="inbox and outbox drained")
        # Each result's INSERT and done at least (a processing applied after done is ignored, so 2 or 3 each).
        wait_for(lambda: len(changes) >= 2 * len(results), timeout=60, message="the changes on the socket")

        print("# API /metrics (segbase lines)")
        print(excerpt(httpx.get(f"{api.url}/metrics").text))
        print(f"\n# worker :{worker_port}/metrics (the second worker on this host found the port taken)")
        print(excerpt(httpx.get(f"http://127.0.0.1:{worker_port}/metrics").text))
        print(f"\n# relay :{relay_port}/metrics")
        print(excerpt(httpx.get(f"http://127.0.0.1:{relay_port}/metrics").text))
        print("\n# segbase status --json (pipeline part)")
        status = json.loads(status_text(settings))
        print(json.dumps({k: v for k, v in status.items() if k.startswith(("queue", "inbox", "outbox"))}))
        socket.close()
        engine.dispose()
    finally:
        for process in reversed(processes):
            process.stop()
        drop_database(name)


if __name__ == "__main__":
    main()
