"""End-to-end latency: webhook POST → worker commit → outbox → relay → Redis → API → the subscribed client's socket
receives the UPDATE, at fixed offered rates. The POSTs are sent by wrk in open loop (bench/sender.py: each
request has a due time, start + n / rate, whatever the answers do; a connection still waiting for an answer sends
late, and the lateness counts).

    .venv/bin/python -m bench.e2e_latency [--rates 200,500,1000] [--seconds 10]

Per rate: p50/p95/p99 from each POST's due time to its `done` UPDATE frame arriving (and from the moment it left),
and whether the rate was sustained (every POST answered 2xx within 100 ms of its due time at p99, every UPDATE
delivered, delivery keeping pace with the offer).
"""
from __future__ import annotations

import argparse
import asyncio
import time
import uuid


from bench.common import Sampler, latency_summary, percentile
from bench.pipeline import WEBHOOK_PATH, done_body
from bench.sender import Wrk
from bench.stack import WEBHOOK_KEY, Stack, pretty
from bench.wsclient import receive, subscribe

SUBSCRIBERS = 10  # users, one socket each; the events are spread over them
DELIVERY_TIMEOUT_S = 60  # after the last POST; what has not arrived by then counts as not delivered


def connections_for(rate: int) -> int:
    """Enough wrk connections that each sends every ~0.2 s at the offered rate (well inside the API's 5 s
    keep-alive, and room for answers up to ~0.2 s before a connection sends late), at most 200."""
    return max(4, min(200, rate // 5))


API_WORK = ("process_webhook (", "_write_forever (api/functions", "_publish_forever (",
            "dispatch (api/realtime/hub.py", "dispatch_batch (api/realtime/hub.py", "_write_queued (api/realtime")
RELAY_WORK = ("publish_batch (",)
WORKER_WORK = ("apply_webhook_event (", "apply_webhook_events (")


async def one_rate(stack: Stack, users, results: list[str], rate: int, profile_seconds: int = 0) -> dict:
    anon = stack.anon_key()
    index = {result_id: n for n, (result_id, _) in enumerate(results)}
    arrived: dict[str, float] = {}
    sockets = []
    for n, user in enumerate(users):
        sockets.append(await subscribe(stack.url, anon, user.access_token, user.id, f"e2e-{rate}-{n}"))

    def on_record(record, received_at) -> None:
        if record.get("status") == "done" and record.get("id") in index:
            arrived.setdefault(record["id"], received_at)

    receivers = [asyncio.create_task(receive(ws, on_record, time.monotonic)) for ws in sockets]
    samplers = []
    if profile_seconds:
        samplers = [("api", Sampler(stack.api.pid, profile_seconds), API_WORK),
                    ("relay", Sampler(stack.relay_process().pid, profile_seconds), RELAY_WORK)]
        samplers += [(f"worker {w.name}", Sampler(w.pid, profile_seconds), WORKER_WORK)
                     for w in stack.worker_processes]
    sender = Wrk(stack.url + WEBHOOK_PATH, [done_body(r) for r, _ in results], connections=connections_for(rate),
                 rate=rate, headers={"X-API-Key": WEBHOOK_KEY}).start()
    sent = await asyncio.to_thread(sender.wait)
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while len(arrived) < len(results) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*receivers, return_exceptions=True)

    lags = [sent.sent_at[n] - sent.due(n) for n in range(len(sent.sent_at))]
    from_due = [arrived[r] - sent.due(index[r]) for r in arrived]
    from_send = [arrived[r] - sent.sent_at[index[r]] for r in arrived]
    delivered_wall = (max(arrived.values()) - sent.start) if arrived else 0
    delivered_rate = len(arrived) / delivered_wall if delivered_wall else 0.0
    sustained = (sent.accepted == len(results) and len(arrived) == len(results)
                 and percentile(lags, 99) < 0.1 and delivered_rate >= 0.95 * rate)
    out = {"offered_per_s": rate, "events": len(results), "sender": sent.command,
           "sent_wall_s": round(sent.sent_at[-1] - sent.start, 2), "statuses": sent.statuses,
           "post_latency": sent.latency, "delivered": len(arrived), "delivered_per_s": round(delivered_rate, 1),
           "send_lag_p99_ms": round(percentile(lags, 99) * 1000, 1),
           # The headline: arrival − the moment the POST was due (what a sender at this rate sees).
           **latency_summary(from_due), "sustained": sustained,
           "from_send": latency_summary(from_send),
           "wrk_cpu_ms_per_request": round(1000 * sent.cpu_s / len(results), 3)}
    if samplers:
        out["profiles"] = {name: sampler.summary(markers) for name, sampler, markers in samplers}
    return out


WARM_UP_SECONDS = 2  # an unmeasured run at the first rate: pools filled, every module imported, caches warm


def run(stack: Stack, *, rates: tuple[int, ...] = (200, 500, 1000), seconds: float = 10, profile_rate: int = 200,
        profile_seconds: int = 0) -> dict:
    """Each rate measured with nothing else running; then, when `profile_seconds`, the profile rate once more
    under py-spy — a pass of its own, because sampling a dozen processes takes CPU from the same two cores and
    would raise the latency it is meant to explain (its figures are reported beside the profile, not as the
    result)."""
    users = stack.bulk_users(SUBSCRIBERS, credits=1_000_000)

    def one(rate: int, run_seconds: float, profile: int = 0) -> dict:
        count = int(rate * run_seconds)
        by_user = stack.pending_results(users, count // SUBSCRIBERS + 1)
        results = []
        for i in range(count):  # interleave users so every socket gets a share of the stream
            user = users[i % len(users)]
            results.append((by_user[user.id][i // len(users)], user))
        stack.wait_outbox_drained()
        measured = asyncio.run(one_rate(stack, users, results, rate, profile))
        stack.wait_inbox_drained()
        stack.wait_outbox_drained()
        return measured

    one(rates[0], min(seconds, WARM_UP_SECONDS))
    out = [one(rate, seconds) for rate in rates]
    result = {"subscribers": SUBSCRIBERS, "seconds_per_rate": seconds, "rates": out}
    if profile_seconds:
        profiled = one(profile_rate, max(seconds, profile_seconds + 1), min(int(seconds), profile_seconds))
        result["profile_pass"] = {"offered_per_s": profile_rate, "profiles": profiled.pop("profiles", {}),
                                  "p50_ms": profiled["p50_ms"], "p99_ms": profiled["p99_ms"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200,500,1000")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    stack = Stack(tag=f"e2e{uuid.uuid4().hex[:4]}").start()
    try:
        print(pretty(run(stack, rates=tuple(int(r) for r in args.rates.split(",")), seconds=args.seconds)))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
