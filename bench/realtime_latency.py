"""Realtime delivery latency: a webhook POST (or a committed SQL change) → the supabase-py postgres_changes callback,
next to a bare Redis publish → flask-sock send → client receive, measured in the same run on the same machine.

    .venv/bin/python -m bench.realtime_latency [--events 250] [--via webhook|sql]

It creates and drops its own database and starts `segbase api`, `segbase relay` (and for --via webhook a
`segbase worker`) plus the bare reference server (bench/realtime_bare_server.py). Events are sequential: each is
written, then awaited, so the figures are latency, not throughput.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid

import httpx
import psycopg
import redis.asyncio as aioredis
import websockets
from supabase import acreate_client

from api.tokens import api_key
from db.engine import create_app_engine
from db.migrate import migrate
from db.urls import libpq_url
from tests.support.database import create_database, drop_database, make_test_settings
from tests.support.factories import create_user
from tests.support.pipeline import event_body, start_worker
from tests.support.processes import (
    ROOT,
    ApiProcess,
    SegbaseProcess,
    free_port,
    wait_for,
)
from tests.support.realtime import submit_as_user


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"n": len(ordered), "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}


def start_bare_server(redis_url: str, channel: str, workers: int = 1) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {"BARE_REDIS_URL": redis_url, "BARE_CHANNEL": channel, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers),
                             "--worker-connections", "20000", "--keep-alive", "5",  # as segbase/server.py
                             "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                             "bench.realtime_bare_server:app"], cwd=ROOT, env=env)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 20, message="bare server")
    return proc, port


async def bare_latency(port: int, redis_url: str, channel: str, events: int) -> list[float]:
    client = aioredis.from_url(redis_url)
    samples = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/fanout") as ws:
        await asyncio.sleep(0.5)  # the server's subscriber starts with the first socket
        for i in range(events):
            start = time.perf_counter()
            await client.publish(channel, json.dumps({"i": i}))
            while json.loads(await ws.recv())["i"] != i:
                pass
            samples.append(time.perf_counter() - start)
    await client.aclose()
    return samples


async def webhook_latency(settings, api_url: str, events: int) -> list[float]:
    """POST /functions/v1/process-webhook `done` for a pending result → the callback of its UPDATE to done."""
    user = create_user(settings, credits=events + 10)
    engine = create_app_engine(settings, pool_size=1)
    result_ids = [str(uuid.uuid4()) for _ in range(events)]
    for result_id in result_ids:
        submit_as_user(engine, user, result_id)
    engine.dispose()
    client = await acreate_client(api_url, api_key(settings, "anon"))
    await client.realtime.set_auth(user.access_token)
    waiting: dict[str, asyncio.Future] = {}

    def on_change(payload) -> None:
        record = payload["data"].get("record") or {}
        future = waiting.get(record.get("id"))
        if record.get("status") == "done" and future and not future.done():
            future.set_result(time.perf_counter())

    channel = client.channel("bench-webhook")
    channel.on_postgres_changes("UPDATE", schema="public", table="segmentation_results", callback=on_change)
    ready = asyncio.get_running_loop().create_future()
    await channel.subscribe(lambda state, err: ready.done() or ready.set_result(state))
    await asyncio.wait_for(ready, 15)
    samples = []
    async with httpx.AsyncClient(timeout=30) as http:
        for result_id in result_ids:
            future = waiting[result_id] = asyncio.get_running_loop().create_future()
            start = time.perf_counter()
            response = await http.post(f"{api_url}/functions/v1/process-webhook", json=event_body(result_id, "done"),
                                       headers={"X-API-Key": settings.webhook_api_keys[0]})
            assert response.status_code in (200, 202), response.text
            samples.append(await asyncio.wait_for(future, 30) - start)
    await client.remove_all_channels()
    return samples


async def segbase_latency(settings, api_url: str, events: int, via: str) -> list[float]:
    if via == "webhook":
        return await webhook_latency(settings, api_url, events)
    user = create_user(settings, credits=events * 2 + 10)
    client = await acreate_client(api_url, api_key(settings, "anon"))
    await client.realtime.set_auth(user.access_token)
    result_id = str(uuid.uuid4())
    waiting: dict[str, asyncio.Future] = {}

    def on_change(payload) -> None:
        marker = (payload["data"].get("record") or {}).get("text_prompt")
        future = waiting.pop(marker, None)
        if future and not future.done():
            future.set_result(time.perf_counter())

    channel = client.channel("bench")
    channel.on_postgres_changes("UPDATE", schema="public", table="segmentation_results", filter=f"id=eq.{result_id}",
                                callback=on_change)
    ready = asyncio.get_running_loop().create_future()
    await channel.subscribe(lambda state, err: ready.done() or ready.set_result(state))
    await asyncio.wait_for(ready, 15)
    samples = []
    async with await psycopg.AsyncConnection.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        await conn.execute("insert into public.segmentation_results (id, user_id, source_image_url) "
                           "values (%s, %s, 'https://example.com/a.png')", (result_id, user.id))
        await conn.execute("set role service_role")
        for i in range(events):
            marker = f"bench-{i}"
            future = waiting[marker] = asyncio.get_running_loop().create_future()
            start = time.perf_counter()
            await conn.execute("update public.segmentation_results set text_prompt = %s where id = %s",
                               (marker, result_id))
            samples.append(await asyncio.wait_for(future, 15) - start)
    await client.remove_all_channels()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=250)
    parser.add_argument("--via", choices=["webhook", "sql"], default="webhook",
                        help="webhook: POST process-webhook `done` (API → inbox → Celery worker → UPDATE); "
                             "sql: a committed UPDATE as service_role")
    args = parser.parse_args()

    name = f"segbase_bench_rt_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    settings = make_test_settings(url, f"bench{uuid.uuid4().hex[:6]}")
    processes = []
    bare = None
    try:
        migrate(settings, log=lambda *_: None)
        api = ApiProcess(settings).start()
        relay = SegbaseProcess(settings, "relay").start()
        processes += [api, relay]
        if args.via == "webhook":
            processes.append(start_worker(settings, "bench-worker"))
        wait_for(lambda: "relay active" in relay.log_text(), 30, message="relay active")
        bare_channel = settings.redis_key("bench", "bare")
        bare, port = start_bare_server(settings.redis_url, bare_channel)
        asyncio.run(bare_latency(port, settings.redis_url, bare_channel, 20))  # warm-up
        bare_samples = asyncio.run(bare_latency(port, settings.redis_url, bare_channel, args.events))
        asyncio.run(segbase_latency(settings, api.url, 20, args.via))  # warm-up
        ours = asyncio.run(segbase_latency(settings, api.url, args.events, args.via))
        report = {"via": args.via, "segbase_to_callback": summary(ours), "bare_publish_to_receive": summary(bare_samples)}
        report["ratio_p50"] = round(report["segbase_to_callback"]["p50_ms"]
                                    / report["bare_publish_to_receive"]["p50_ms"], 1)
        print(json.dumps(report, indent=2))
    finally:
        for process in processes:
            process.stop()
        if bare:
            bare.terminate()
            bare.wait(10)
        drop_database(name)


if __name__ == "__main__":
    main()
