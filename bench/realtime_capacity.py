"""Realtime capacity: memory per idle authenticated connection of one `segbase api` worker next to the bare
flask-sock echo server (bench/realtime_bare_server.py, same gunicorn + gevent) in the same run, the largest number
of idle joined sockets one process held, and the cost per delivered frame (the hub's fan-out, profiled).

    .venv/bin/python -m bench.realtime_capacity [--idle 2000] [--max 10000] [--users 50] [--frames-channels 2000]

Idle sockets: each joins `realtime:<n>` with a user's access token (session checked) and a filtered binding, then
sends nothing but heartbeats. RSS is read from /proc for the gunicorn worker process. It creates and drops its own
database. Client side: asyncio + websockets in this process, its fd limit lifted to the hard limit.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import queue
import time
import uuid

import websockets

from api.realtime import bindings as realtime_bindings
from api.realtime import protocol
from api.realtime.channels import Channel
from api.realtime.hub import Hub
from api.tokens import api_key
from bench.realtime_latency import start_bare_server
from bench.stack import BENCH_REALTIME_LIMITS, children, raise_fd_limit, rss_kib
from bench.wsclient import subscribe
from db.engine import create_app_engine
from db.migrate import migrate
from db.uow import Caller
from tests.support.database import create_database, drop_database, make_test_settings
from tests.support.factories import create_user
from tests.support.processes import ApiProcess, wait_for

PARALLEL = 50


def worker_pid(master: int) -> int:
    return wait_for(lambda: (kids := children(master)) and kids[0], 20, message="gunicorn worker")


async def open_joined(url: str, anon: str, users: list, count: int, offset: int) -> list:
    sockets: list = []
    gate = asyncio.Semaphore(PARALLEL)

    async def one(n: int) -> None:
        user = users[n % len(users)]
        async with gate:
            sockets.append(await subscribe(url, anon, user.access_token, user.id, f"idle{n}"))

    results = await asyncio.gather(*(one(offset + n) for n in range(count)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(f"  {len(errors)} sockets failed, first: {errors[0]!r}")
    return sockets


async def open_echo(port: int, count: int) -> list:
    sockets: list = []
    gate = asyncio.Semaphore(PARALLEL)

    async def one() -> None:
        async with gate:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/echo", ping_interval=None, max_queue=None)
            await ws.send("hi")
            await ws.recv()
            sockets.append(ws)

    await asyncio.gather(*(one() for _ in range(count)))
    return sockets


async def close_all(sockets: list) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def per_connection(before: int, after: int, count: int) -> float:
    return round((after - before) / max(count, 1), 1)


async def idle_memory(api, bare_port: int, anon: str, users: list, idle: int, maximum: int) -> dict:
    api_worker, bare_worker = worker_pid(api.pid), worker_pid(bare_port_master[0])
    # Warm both (imports, pools, the hub's subscriber) so the delta is the sockets only.
    await close_all(await open_joined(api.url, anon, users, 20, 0))
    await close_all(await open_echo(bare_port, 20))
    await asyncio.sleep(1)
    base_api, base_bare = rss_kib(api_worker), rss_kib(bare_worker)
    ours = await open_joined(api.url, anon, users, idle, 100)
    bare = await open_echo(bare_port, idle)
    await asyncio.sleep(2)
    report = {
        "idle_sockets": idle,
        "segbase_kib_per_idle_authenticated_connection": per_connection(base_api, rss_kib(api_worker), len(ours)),
        "bare_echo_kib_per_connection": per_connection(base_bare, rss_kib(bare_worker), len(bare)),
    }
    await close_all(bare)
    held = len(ours)
    step = 1000
    while held < maximum:
        more = await open_joined(api.url, anon, users, min(step, maximum - held), 100 + held)
        ours += more
        if len(more) < min(step, maximum - held):
            break
        held = len(ours)
    report["largest_idle_joined_sockets_held_by_one_process"] = len(ours)
    report["api_worker_rss_mib_at_largest"] = round(rss_kib(api_worker) / 1024, 1)
    await close_all(ours)
    return report


bare_port_master: list[int] = [0]


def frame_cost(settings, engine, channels: int, events: int) -> dict:
    """Hub.dispatch over `channels` channels of one owner (each matching): µs per delivered frame, and the top of
    a cProfile of it (routing, binding match, serialization once per role, frame assembly, queue put)."""
    class QueueConnection:
        vsn = protocol.VSN_ARRAYS

        def __init__(self) -> None:
            self.queue: queue.Queue = queue.Queue()

        def push(self, frame: str) -> bool:
            self.queue.put_nowait(frame)
            return True

    hub = Hub(settings, engine)
    published = hub.published_tables()
    owner = str(uuid.uuid4())
    caller = Caller("authenticated", {"sub": owner, "role": "authenticated"})
    for n in range(channels):
        bindings = realtime_bindings.parse_bindings([{"event": "*", "schema": "public", "table": "segmentation_results",
                                             "filter": f"user_id=eq.{owner}"}], published)
        hub.register(Channel(QueueConnection(), f"realtime:c{n}", "1", bindings, caller, None))
    record = {"id": str(uuid.uuid4()), "user_id": owner, "status": "done", "text_prompt": "a cat",
              "labels": [{"label": "cat", "score": 0.9}], "metadata": {}, "mask_image_url": "https://x/m.png",
              "source_image_url": "https://x/in.png", "project_id": None,
              "created_at": "2026-11-24T20:00:00+00:00", "updated_at": "2026-11-24T20:00:01+00:00"}
    columns = [{"name": name, "type": "text"} for name in record]
    message = json.dumps({"id": 1, "schema": "public", "table": "segmentation_results", "type": "UPDATE",
                          "owner": owner, "commit_timestamp": "2026-11-24T20:00:01.000Z", "columns": columns,
                          "hidden": {"authenticated": [], "anon": []}, "record": record,
                          "old_record": {"id": record["id"]}})
    hub.dispatch(message)
    started = time.perf_counter()
    for _ in range(events):
        hub.dispatch(message)
    elapsed = time.perf_counter() - started
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(max(events // 4, 1)):
        hub.dispatch(message)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(8)
    frames = events * channels
    return {"channels": channels, "events": events, "us_per_delivered_frame": round(elapsed / frames * 1e6, 2),
            "frames_per_second_one_core": int(frames / elapsed), "profile_top": text.getvalue().strip().splitlines()[-12:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--max", type=int, default=10000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--frames-channels", type=int, default=2000)
    parser.add_argument("--frames-events", type=int, default=50)
    args = parser.parse_args()
    limit = raise_fd_limit()

    name = f"segbase_bench_rtcap_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    # The process must hold --max sockets from this one address, besides its HTTP reserve: limits raised here.
    limits = {**BENCH_REALTIME_LIMITS, "api_worker_connections": args.max + 200, "realtime_http_reserve": 200,
              "realtime_max_sockets_per_ip": args.max, "realtime_max_sockets_per_user": -(-args.max // args.users) + 1}
    settings = make_test_settings(url, f"benchcap{uuid.uuid4().hex[:6]}", db_pool_size=5, **limits)
    api = bare = None
    try:
        migrate(settings, log=lambda *_: None)
        users = [create_user(settings) for _ in range(args.users)]
        engine = create_app_engine(settings, pool_size=2)
        report = {"fd_limit": limit, "realtime_limits": limits, "frame_cost": frame_cost(settings, engine, args.frames_channels,
                                                              args.frames_events)}
        api = ApiProcess(settings).start()
        bare, port = start_bare_server(settings.redis_url, settings.redis_key("bench", "bare"))
        bare_port_master[0] = bare.pid
        report.update(asyncio.run(idle_memory(api, port, api_key(settings, "anon"), users, args.idle, args.max)))
        engine.dispose()
        print(json.dumps(report, indent=2))
    finally:
        if api:
            api.stop()
        if bare:
            bare.terminate()
            bare.wait(10)
        drop_database(name)


if __name__ == "__main__":
    main()
