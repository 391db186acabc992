"""End-to-end latency: webhook POST → worker commit → outbox → relay → Redis → API → the subscribed client's socket
receives the UPDATE, at fixed offered rates (open loop: POSTs leave on schedule whatever the answers do).

    .venv/bin/python -m bench.e2e_latency [--rates 50,200,500] [--seconds 10]

Per rate: p50/p95/p99 from the POST leaving to the `done` UPDATE frame arriving, and whether the rate was
sustained (every POST answered 202 on schedule, every UPDATE delivered, delivery keeping pace with the offer).
"""
from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import httpx

from bench.common import Sampler, latency_summary, percentile
from bench.pipeline import done_body, post_event
from bench.stack import WEBHOOK_KEY, Stack, pretty
from bench.wsclient import receive, subscribe

SUBSCRIBERS = 10  # users, one socket each; the events are spread over them
DELIVERY_TIMEOUT_S = 60  # after the last POST; what has not arrived by then counts as not delivered
# Open loop, but at most this many POSTs in flight (= the client's connections): beyond it httpx's pool spends
# its time re-scanning thousands of queued requests and the load generator, not the server, becomes the limit.
MAX_IN_FLIGHT = 100


API_WORK = ("process_webhook (", "dispatch (api/realtime/hub.py", "_write_forever (")
RELAY_WORK = ("publish_batch (",)


async def one_rate(stack: Stack, users, results: list[str], rate: int, profile_seconds: int = 0) -> dict:
    anon = stack.anon_key()
    owner_of = {}
    arrived: dict[str, float] = {}
    sent: dict[str, float] = {}
    sockets = []
    for n, user in enumerate(users):
        sockets.append(await subscribe(stack.url, anon, user.access_token, user.id, f"e2e-{rate}-{n}"))
    for result_id, user in results:
        owner_of[result_id] = user

    def on_record(record, received_at) -> None:
        if record.get("status") == "done" and record.get("id") in sent:
            arrived.setdefault(record["id"], received_at)

    receivers = [asyncio.create_task(receive(ws, on_record, time.perf_counter)) for ws in sockets]
    statuses: dict[int, int] = {}
    lags: list[float] = []
    retried: list[str] = []
    scheduled: dict[str, float] = {}
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=stack.url, limits=limits, timeout=30,
                                 headers={"X-API-Key": WEBHOOK_KEY}) as client:
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

        async def post(result_id: str, due: float) -> None:
            async with in_flight:  # a server that falls behind shows as send lag, not as a client meltdown
                start = time.perf_counter()
                lags.append(start - due)
                sent[result_id] = start
                scheduled[result_id] = due
                response = await post_event(client, done_body(result_id), retried)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        tasks = []
        samplers = []
        if profile_seconds:
            samplers = [("api", Sampler(stack.api.pid, profile_seconds), API_WORK),
                        ("relay", Sampler(stack.relay_process().pid, profile_seconds), RELAY_WORK)]
            samplers += [(f"worker {w.name}", Sampler(w.pid, profile_seconds), ("apply_webhook_event (",))
                         for w in stack.worker_processes]
        t0 = time.perf_counter() + 0.2
        for i, (result_id, _) in enumerate(results):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(result_id, due)))
        offered_wall = time.perf_counter() - t0
        await asyncio.gather(*tasks)
        deadline = time.perf_counter() + DELIVERY_TIMEOUT_S
        while len(arrived) < len(results) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*receivers, return_exceptions=True)

    latencies = [arrived[r] - sent[r] for r in arrived]
    first = min(sent.values())
    delivered_wall = (max(arrived.values()) - first) if arrived else 0
    delivered_rate = len(arrived) / delivered_wall if delivered_wall else 0.0
    summary = latency_summary(latencies)
    sustained = (statuses.get(202, 0) + statuses.get(200, 0) == len(results) and len(arrived) == len(results)
                 and percentile(lags, 99) < 0.1 and delivered_rate >= 0.95 * rate)
    out = {"offered_per_s": rate, "events": len(results), "sent_wall_s": round(offered_wall, 2),
           "statuses": statuses, "transport_retries": len(retried), "delivered": len(arrived), "delivered_per_s": round(delivered_rate, 1),
           "send_lag_p99_ms": round(percentile(lags, 99) * 1000, 1), **summary, "sustained": sustained,
           # What the sender sees when the server falls behind: arrival − the moment the POST was due.
           "from_schedule": latency_summary([arrived[r] - scheduled[r] for r in arrived])}
    if samplers:
        out["profiles"] = {name: sampler.summary(markers) for name, sampler, markers in samplers}
    return out


def run(stack: Stack, *, rates: tuple[int, ...] = (50, 200, 500), seconds: float = 10, profile_rate: int = 200,
        profile_seconds: int = 0) -> dict:
    users = stack.bulk_users(SUBSCRIBERS, credits=1_000_000)
    per_user_needed = int(max(rates) * seconds) // SUBSCRIBERS + 1
    out = []
    for rate in rates:
        count = int(rate * seconds)
        by_user = stack.pending_results(users, per_user_needed)
        results = []
        for i in range(count):  # interleave users so every socket gets a share of the stream
            user = users[i % len(users)]
            results.append((by_user[user.id][i // len(users)], user))
        stack.wait_outbox_drained()
        profile = min(int(seconds), profile_seconds) if rate == profile_rate else 0
        out.append(asyncio.run(one_rate(stack, users, results, rate, profile)))
        stack.wait_inbox_drained()
        stack.wait_outbox_drained()
    return {"subscribers": SUBSCRIBERS, "seconds_per_rate": seconds, "rates": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,200,500")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    stack = Stack(tag=f"e2e{uuid.uuid4().hex[:4]}").start()
    try:
        print(pretty(run(stack, rates=tuple(int(r) for r in args.rates.split(",")), seconds=args.seconds)))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
