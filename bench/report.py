"""Render a bench.run report as docs/BENCHMARKS.md: the summary table of figures and ratios first, then each
benchmark's raw numbers and what dominates its path according to py-spy."""
from __future__ import annotations

import json
from typing import Any

COMMANDS = """\
make bench                                      # everything below, one stack, writes this file (~15-20 min)
.venv/bin/python -m bench.run --only pipeline   # any subset: pipeline,e2e,fanout,auth,dispatch,storage,
                                                #   rest_embed,realtime_rls,scaling,rls
.venv/bin/python -m bench.run --quick --output /tmp/b.md   # the smoke test's tiny run (figures meaningless)
.venv/bin/python -m bench.pipeline --events 20000 --concurrency 32
.venv/bin/python -m bench.e2e_latency --rates 200,500,1000 --seconds 10
.venv/bin/python -m bench.fanout --users 2000 --per-user 5 --rate 2000 --seconds 10 --clients 4 --sockets-per-process 5000
.venv/bin/python -m bench.rls --users 10000 --per-user 100 --queries 2000
.venv/bin/python -m bench.auth --requests 400 --concurrency 20
.venv/bin/python -m bench.dispatch              # push latency @ 100 jobs/s, claim throughput with 4 pull workers
.venv/bin/python -m bench.rest_embed --seconds 5 --rounds 3
.venv/bin/python -m bench.realtime_rls --users 100 --rate 20 --seconds 8 --missed 100
pgbench -n -M extended -f bench/event_tx.sql -D attempt=0 -c 4 -t 2000 -U authenticator <db>   # the reference
"""

STRUCTURE = """\
How to read the profiles: py-spy samples the on-CPU stack of every thread of the process tree (~97 times a
second). A sample is "busy" when its stack holds the path's own work (the Celery task `apply_webhook_event`, the
view `process_webhook`, the hub's `dispatch` and the sockets' `_write_queued`, the relay's `publish_batch`,
flask's `dispatch_request`, the sign-in view and argon2); the rest is the machinery around it (for a Celery
worker: the consumer receiving, dispatching and acknowledging messages). "Busy share per process" = of that
process's CPU samples, how many were the path's work; "busy time by layer" splits those by the innermost frame
that belongs to a known layer ("PostgreSQL round trips" = CPU inside psycopg: encoding, sending, parsing)."""


METHOD = """\
- **Sender.** Every HTTP request of the pipeline and end-to-end rows is sent by Debian's `wrk` (C, one thread)
  with bench/wrk_bodies.lua: each of N distinct JSON bodies is POSTed exactly once (X-API-Key, no signature),
  either closed loop on the stated number of connections or open loop at a fixed rate (request n is due at
  start + n / rate; a connection still waiting for an answer sends late and the lateness counts, as wrk2 does).
  Its CPU per request is in the raw numbers (`wrk_cpu_ms_per_request`).
- **Pipeline.** `done` events for users × 100 pending results (bulk-created as the owner with every trigger on,
  so each result carries its reservation), POSTed to `/functions/v1/process-webhook` by wrk on the stated number
  of connections, after a warm-up of 4 × concurrency events. accepted/s = 2xx answers ÷ wrk's wall time;
  applied/s = events ÷ time from the first POST until the last
  inbox row is final (polled every 0.5 s). Reference: `pgbench -M extended -f bench/event_tx.sql` on the same
  database as `authenticator`, clients = worker processes × concurrency (2 × 2 = 4), the server's
  `synchronous_commit` (the workers do not change it). `attempt=0` runs the one transaction the worker commits to
  apply an event (`internal.apply_webhook_event`: inbox update, result update with its triggers — status machine,
  charge = usage_logs row + credit decrement, realtime outbox row); `attempt=1` adds the worker's separately
  committed `internal.begin_webhook_attempt`, i.e. all the SQL the worker runs per event. The event id comes
  from a one-row index read in `bench.event_queue`, outside the transactions (what the Celery message carries).
  CPU per event: utime + stime from /proc for each process group (PostgreSQL backends found by
  application_name in pg_stat_activity after the warm-up) over the measured run ÷ events; wrk's from its rusage.
- **Acceptance vs the bare endpoint (row 1a).** With the workers stopped, the same wrk command (same connections,
  the same number of distinct bodies) runs against bench/accept_reference.py — gunicorn + gevent, one worker
  process, Flask, `json.loads`, one autocommit psycopg INSERT into `bench.accept_inbox` (a copy of the inbox
  table with its unique key and indexes), one Redis LPUSH, 202 — then against process-webhook, then the
  reference again; the ratio is process-webhook's accepted/s ÷ the mean of the two reference runs.
- **Worker stage (row 1b).** The events accepted in row 1a (their Celery messages waiting in Redis) are drained
  by the same 2 × 2 workers started with `INBOX_BATCH_SIZE` = 1 (batching off) or the default; applied/s = events
  ÷ (the last `finished_at` − the first `last_attempt_at` in the inbox). "Attempts per event" = inbox `attempts` ÷
  events (> 1: an event was claimed again after a failed batch, or a retry).
- **End-to-end.** 10 users, one socket each (raw `websockets` client, vsn 1.0.0, an UPDATE binding filtered by
  `user_id`), wrk POSTing in open loop at the offered rate for the stated seconds (connections = rate ÷ 5, 4 to
  200); latency = each POST's due time → the `done` UPDATE frame received (the raw numbers also give it from the
  moment the POST left). Sustained = every POST answered 2xx, every UPDATE delivered, POSTs leaving within 100 ms
  of their due time at p99 and delivery ≥ 95 % of the offered rate. The backlog is drained between rates.
- **Fan-out.** Users with live sessions and minted access tokens, `per_user` sockets each spread over several
  client processes (asyncio + websockets), each joined to its user's results (`user_id=eq.<uid>`). The owner
  commits plain UPDATEs of `text_prompt` = the wall time before the commit, 50 transactions/s of rate/50 rows;
  latency = receive time − that time (one clock). The sockets go to ceil(sockets ÷ `sockets_per_process`) API
  processes (gunicorn workers of one `segbase api` on a stack of the benchmark's own, which sets every socket
  limit explicitly and reports it with each process's file-descriptor limit); each process's share is counted
  from its established connections to the API port. Memory per connection = growth of each gunicorn worker's RSS
  from before the sockets opened to after every join was acknowledged, ÷ the sockets it holds (the total over
  all workers ÷ all sockets in the table). CPU of the API workers, the relay, the client processes and the
  committing parent is reported in cores over the change window. Reference: bench/realtime_bare_server.py
  `/echo` (same gunicorn + gevent, as many workers), the same number of sockets each echoing one timestamped
  frame every sockets ÷ frames/s seconds (staggered), so it moves the same frames/s; latency = round trip.
- **RLS.** tests/support/bulk.py loads users × 100 results as the owner with `session_replication_role = replica`
  for that one transaction (user triggers — sign-up profile, reservation, outbox — are skipped for the load
  only), then ANALYZE. On one `authenticator` connection, each iteration runs both queries in alternating order,
  each in its own transaction after `set_config('role', …)` + claims as the API does, timing only the (prepared)
  SELECT. /rest/v1: sequential keep-alive GETs `select=*&order=created_at.desc&limit=20` by wrk on one
  connection for `http_seconds`, each with the next sample user's JWT (bench/wrk_tokens.lua; wrk's own latency
  percentiles), after a 2 s warm-up.
- **Auth.** Sign-ins sent by wrk (closed loop, one connection per concurrent client, password grants for the
  accounts in turn) and bench/auth_bench.py's `raw_hashes_per_second`
  (argon2-cffi with the server's parameters from api.auth.passwords) on the bench stack; token verification
  timed in-process on api.identity (`decode_token`; `resolve_caller` = what every request pays, with its session
  check).
- Profiles: py-spy 0.4.3 `record --subprocesses` (on-CPU samples), in a pass of their own after each measured
  load (the same load once more, its figures discarded but for the profile): sampling a dozen processes ~100
  times a second takes CPU from the same two cores, and measured together it raised the end-to-end p99 at
  200/s from ~75 ms to seconds and the /rest/v1 p95 from ~4 ms to ~10 ms on a quiet machine.
- **Embedding** (bench/rest_embed.py, a database of its own: 100k results for 1k users, 5 projects each): wrk
  (one thread, 4 connections, one user's token) on the plain list and the list with `projects(name)` embedded, in
  alternating rounds (medians reported); the composed statements and a hand-written join also run directly as
  the user. **Realtime on a shared RLS table** (bench/realtime_rls.py, stacks of their own with 1 and 2 API
  processes): every subscriber subscribed to `public.bench_shared` (RLS `using (true)`), so each change is checked
  as each distinct subscriber; reference: the same sockets on the owner-routed results path. Recovery: one socket
  rejoining with `since` after N changes it missed, against a plain join.
- **Dispatch** (bench/dispatch.py, stacks of its own in DISPATCH_MODE push and pull). Push latency: results
  inserted as their owners at the stated rate (open loop, one transaction each), after 20 unmeasured warm-up jobs;
  latency = the receiver's arrival time (a separate process) − the moment the insert's commit returned. Reference:
  the same inserts with a NOTIFY that a minimal relay (LISTEN, then POST at once; no queue table, no Celery, no
  signature) forwards to the same receiver — the floor of PostgreSQL → HTTP. Claim throughput: N queued jobs claimed
  over HTTP by 4 threads (`claim-jobs`, `max` = the batch) until empty, then re-queued and claimed as direct SQL
  (`internal.claim_dispatch_jobs`) on 4 connections.
- **Storage** (bench/storage.py, an API process of its own, file backend on the disk `cp` uses). Per repeat, in
  turn: `cp`, the same copy made durable (`dd conv=fsync`), the floor, then the upload and download through
  /storage/v1 with bench/bulk_http.py (os.sendfile up, os.splice down), then curl. The floor sends the same bytes
  the same way to bench/durable_receiver.py, which commits them with segbase's own blob writer (splice(2), writeback
  while streaming, fsync, rename, directory fsync) and nothing else: upload ÷ floor is what HTTP, authentication and
  the two transactions add; floor ÷ `cp` is what TCP and a durable 2xx cost whatever the server. Every timed
  transfer starts right after a scratch file of the same size was written and removed, so each writes its page
  cache into just-freed memory (in this VM, memory the host has taken back costs ~10× more to write into, and it
  used to fall on whichever transfer came first).
"""

PIPELINE_ADVICE = """\
Where the pipeline's cost sits, by construction (api/functions/process_webhook.py, api/functions/inbox_writer.py,
workers/tasks.py): per event the API runs one HTTP request through gunicorn and Flask (API key, body parsed and
validated with pydantic, `mask_url` checked against the URL policy, one JSON log line and the request metrics);
the inbox rows of concurrent requests share one INSERT and one COMMIT (group commit), and their ids one Celery
message, published after the requests were answered; a worker receives that message, commits the attempt for the
group (`begin_webhook_batch`, which also claims up to `INBOX_BATCH_SIZE` queued events) and applies it in one
transaction (`apply_webhook_events`), then acknowledges; the relay publishes each result's UPDATE. pgbench pays
only the SQL, in C, one event per transaction. With wrk as the sender, the load generator costs a few hundredths
of a millisecond per request (the CPU line above), so the machine's two cores go to segbase — and to the other
tenants of the machine, whose share is the gap between segbase's CPU per event and the machine time per event.
Row 1a compares acceptance alone with the bare endpoint: both servers are one CPU-bound gevent process, so the
ratio of accepted/s is close to the inverse ratio of server CPU per request shown in the row; the API profile
above says where process-webhook's extra CPU goes (Flask's request hooks and the request log line, pydantic
validation and the URL policy, the writer's and publisher's loops), none of which the bare endpoint does."""


def _pipeline_findings(p: dict) -> str:
    cpu = p.get("cpu_ms_per_event") or {}
    if not cpu:
        return ""
    total = sum(cpu.values())
    system = sum(v for k, v in cpu.items() if not k.startswith("load generator"))
    ranked = sorted(cpu.items(), key=lambda kv: -kv[1])
    parts = ", ".join(f"{k} {v:.2f} ms" for k, v in ranked)
    ceiling = 2000 / system if system else 0
    return (f"CPU per applied event (measured): {parts} — {system:.1f} ms for segbase's processes and their "
            f"PostgreSQL backends ({total:.1f} ms with the load generator); the run used "
            f"{p['cpu_ms_per_event_whole_machine']:.1f} ms of machine time (2 cores × wall) per event, the rest "
            f"going to other tenants of the machine. At {system:.1f} ms per event, two cores could accept and apply "
            f"at most ≈ {ceiling:,.0f} events/s even with the machine to themselves; the pgbench reference needs "
            f"no API, broker or Python per event.")


def _e2e_findings(e: dict, p: dict) -> str:
    """Why a rate is or is not sustained, from the pipeline run's measured CPU per event and machine share."""
    cpu = p.get("cpu_ms_per_event") or {}
    system = sum(v for k, v in cpu.items() if not k.startswith(("load generator", "bench process")))
    if not system:
        return ""
    share = system / p["cpu_ms_per_event_whole_machine"] if p.get("cpu_ms_per_event_whole_machine") else 0
    lines = []
    for r in e["rates"]:
        need = r["offered_per_s"] * system / 1000
        outcome = "sustained" if r["sustained"] else f"delivered {_fmt(r['delivered_per_s'])}/s"
        lines.append(f"{r['offered_per_s']}/s needs ≈ {need:.2f} cores of segbase CPU ({outcome})")
    return (f"Capacity behind these rates: the pipeline run measured {system:.2f} ms of segbase CPU per event (all its "
            f"processes and their PostgreSQL backends), and segbase used {100 * share:.0f} % of the machine's two cores "
            f"over that run's wall time (its CPU ÷ 2 cores × wall; the rest went to the other tenants of the machine, "
            f"whose load average is in the header). So "
            + "; ".join(lines) + f"; at the ≈ {2 * share:.2f} cores it obtained, the pipeline's ceiling in this run "
            f"was ≈ {_fmt(2 * share * 1000 / system)} events/s — a rate above it is not sustained, and its latency "
            f"is the queue growing in the sender (open loop: counted from each POST's due time).")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _goal(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**not met**")


FANOUT_GOAL = {"sockets": 10_000, "frames_per_s": 10_000, "p95_ms": 100, "kib_per_connection": 50}


def fanout_goal_met(f: dict) -> bool:
    """10,000 sockets, 10,000 frames/s offered and delivered at p95 ≤ 100 ms, ≤ 50 KiB per idle joined connection:
    every expected frame arrived, the offered load was ≥ 10,000 frames/s within 2 % (the change source is paced,
    50 ticks/s), delivered/s — measured from the first commit to the last frame, so it includes the delivery tail
    — is within 2 % of it, and the API processes' RSS grew by at most 50 KiB per socket."""
    o, goal = f["segbase"], FANOUT_GOAL
    offered = o["changes_per_s"] * f["sockets_per_user"]
    return (o["sockets"] >= goal["sockets"] and o.get("frames", 0) == o["frames_expected"]
            and offered >= 0.98 * goal["frames_per_s"] and o.get("delivered_per_s", 0) >= 0.98 * goal["frames_per_s"]
            and o.get("p95_ms", 1e9) <= goal["p95_ms"] and o["memory_per_connection_kib"] <= goal["kib_per_connection"])


def _fanout_processes(o: dict) -> str:
    """`N API processes (a + b sockets)`; a report from before the per-process figures says one."""
    split = " + ".join(f"{p['sockets']:,}" for p in o.get("per_process", []))
    count = o.get("api_processes", 1)
    return f"{count} API process{'es' if count != 1 else ''}" + (f" ({split} sockets)" if count > 1 and split else "")


def summary_rows(results: dict) -> list[list[str]]:
    rows: list[list[str]] = []
    p = results.get("pipeline")
    if p:
        ref = p["pgbench"]
        rows.append(["1. Pipeline throughput", f"{p['events']:,} webhooks at concurrency {p['concurrency']}: "
                     f"accepted {_fmt(p['accepted_per_s'])}/s, applied {_fmt(p['applied_per_s'])}/s "
                     f"(all committed after {_fmt(p['applied_wall_s'])} s; sender: wrk)",
                     f"pgbench event_tx.sql, {ref['clients']} clients: {_fmt(ref['tps'])} tps "
                     f"(with the worker's attempt commit too: {_fmt(p['pgbench_with_attempt_tx']['tps'])} tps)",
                     f"**{p['ratio_applied_vs_pgbench']:.2f}×** "
                     f"({p['ratio_applied_vs_pgbench_with_attempt_tx']:.2f}× vs two-commit reference)",
                     "≥ 0.5×", _goal(p["ratio_applied_vs_pgbench"] >= 0.5)])
        for drained in p.get("backlog", []):
            acc = drained.get("accept")
            if acc:
                rows.append([f"1a. Acceptance alone (workers stopped), before INBOX_BATCH_SIZE={drained['batch_size']}",
                             f"process-webhook: {drained['events']:,} events at {p['concurrency']} connections, "
                             f"{_fmt(acc['segbase']['accepted_per_s'])}/s (answer p99 "
                             f"{_fmt(acc['segbase'].get('latency', {}).get('p99_ms', 0))} ms; API process CPU "
                             f"{_fmt(acc['segbase'].get('server_cpu_ms_per_request', 0))} ms/request)",
                             f"bare accept endpoint, same wrk command: {_fmt(acc['reference_before']['accepted_per_s'])}/s "
                             f"before, {_fmt(acc['reference_after']['accepted_per_s'])}/s after (server CPU "
                             f"{_fmt(acc['reference_before'].get('server_cpu_ms_per_request', 0))}, "
                             f"{_fmt(acc['reference_after'].get('server_cpu_ms_per_request', 0))} ms/request)",
                             f"**{acc['ratio']:.2f}×**", "≥ 0.8×", _goal(acc["ratio"] >= 0.8)])
        for drained in p.get("backlog", []):
            batching = "off" if drained["batch_size"] == 1 else f"{drained['batch_size']}"
            rows.append([f"1b. Worker stage from a backlog, INBOX_BATCH_SIZE={drained['batch_size']}",
                         f"{drained['events']:,} events accepted with the workers stopped, then drained by "
                         f"{p['worker_processes']} × {p['worker_concurrency']} workers (batching {batching}): "
                         f"applied {_fmt(drained['applied_per_s'])}/s ({_fmt(drained['drain_s'])} s, "
                         f"{drained['attempts_per_event']} attempts per event)",
                         f"pgbench event_tx.sql: {_fmt(ref['tps'])} tps",
                         f"**{drained['ratio_vs_pgbench']:.2f}×**", "—", "—"])
    e = results.get("e2e")
    if e:
        for r in e["rates"]:
            rows.append([f"2. End-to-end latency @ {r['offered_per_s']}/s",
                         f"p50 {_fmt(r['p50_ms'])} ms, p95 {_fmt(r['p95_ms'])} ms, p99 {_fmt(r['p99_ms'])} ms; "
                         f"{r['delivered']}/{r['events']} delivered at {_fmt(r['delivered_per_s'])}/s; "
                         f"sustained: {'yes' if r['sustained'] else 'no'}"
                         + (f" (POSTs left up to {_fmt(r['send_lag_p99_ms'])} ms after their due time, p99; "
                            f"from leaving: p99 {_fmt(r['from_send']['p99_ms'])} ms)"
                            if "from_send" in r and not r["sustained"] else ""),
                         "offered rate (open loop, wrk)",
                         f"{r['delivered_per_s'] / r['offered_per_s']:.2f}× of offered",
                         "p99 ≤ 100 ms" if r["offered_per_s"] == 200 else "—",
                         _goal(r["p99_ms"] <= 100 and r["sustained"]) if r["offered_per_s"] == 200 else "—"])
    f = results.get("fanout")
    if f:
        o, b = f["segbase"], f["bare_echo"]
        limits = f.get("socket_limits", {})
        rows.append(["3. WebSocket fan-out",
                     f"{o['sockets']:,} sockets / {f['users']:,} users on {_fanout_processes(o)}, "
                     f"{_fmt(o['changes_per_s'])} changes/s → "
                     f"{_fmt(o.get('delivered_per_s', 0))} frames/s delivered ({o.get('frames', 0):,}/"
                     f"{o['frames_expected']:,}), p95 {_fmt(o.get('p95_ms', 0))} ms, "
                     f"{_fmt(o['memory_per_connection_kib'])} KiB/connection"
                     + (f", {o['connect_retries']:,} connect retries" if o.get("connect_retries") else "")
                     + (f" (limits per process: {limits['api_worker_connections']:,} connections, "
                        f"{limits['realtime_max_sockets (per process)']:,} sockets, fd limit "
                        f"{o['per_process'][0]['fd_limit (soft/hard)']})" if limits and o.get("per_process") else ""),
                     f"bare flask-sock echo, {b['sockets']:,} sockets on {b.get('worker_processes', 1)} worker "
                     f"process(es): {_fmt(b.get('delivered_per_s', 0))} "
                     f"frames/s, p95 {_fmt(b.get('p95_ms', 0))} ms, {_fmt(b['memory_per_connection_kib'])} "
                     f"KiB/connection",
                     f"**{f['ratio_delivered_vs_bare']:.2f}×** frames/s; "
                     f"{o['memory_per_connection_kib'] / max(b['memory_per_connection_kib'], 0.1):.1f}× memory",
                     "10,000 sockets, ≥ 10,000/s at p95 ≤ 100 ms, ≤ 50 KiB/connection",
                     _goal(fanout_goal_met(f))])
    r = results.get("rls")
    if r:
        rows.append(["4. RLS overhead (SQL)",
                     f"{r['rows']:,} results / {r['users']:,} users, 20 latest as the user: "
                     f"p50 {r['sql_as_user']['p50_ms']:.3f} ms, mean {r['sql_as_user']['mean_ms']:.3f} ms",
                     f"same SQL as service_role + explicit filter: p50 "
                     f"{r['sql_as_service_role_filtered']['p50_ms']:.3f} ms, mean "
                     f"{r['sql_as_service_role_filtered']['mean_ms']:.3f} ms",
                     f"**{r['ratio_user_vs_service_p50']:.2f}×** p50 ({r['ratio_user_vs_service_mean']:.2f}× mean)",
                     "≤ 1.1×", _goal(r["ratio_user_vs_service_p50"] <= 1.1)])
        h = r["http_rest_v1"]
        rows.append(["4. RLS list via /rest/v1", f"p50 {h['p50_ms']:.2f} ms, p95 {h['p95_ms']:.2f} ms "
                     f"({h['n']:,} sequential requests, keep-alive"
                     + ("; sender: wrk, one connection)" if "sender" in h else ")"),
                     f"direct SQL as the user p50 {r['sql_as_user']['p50_ms']:.3f} ms",
                     f"{h['p50_ms'] / r['sql_as_user']['p50_ms']:.1f}× p50", "p95 ≤ 5 ms", _goal(h["p95_ms"] <= 5)])
    a = results.get("auth")
    if a:
        s = a["sign_in"]
        raw = a["raw_argon2id_hashes_per_s"]
        pool = next(v for k, v in raw.items() if k != "1_thread")
        tail = f"p99 {_fmt(s['p99_ms'])} ms" if "p99_ms" in s else f"p95 {_fmt(s['p95_ms'])} ms"
        rows.append(["5. Auth sign-in", f"concurrency {a['concurrency']}: {_fmt(s['throughput_per_s'])}/s, "
                     f"p50 {_fmt(s['p50_ms'])} ms, {tail} ({s['failures']} failures"
                     + ("; sender: wrk)" if "sender" in s else ")"),
                     f"raw argon2id (m={a['argon2id']['memory_kib']} KiB, t={a['argon2id']['time_cost']}, "
                     f"p={a['argon2id']['parallelism']}): {_fmt(pool)}/s on {a['auth_hash_threads']} threads, "
                     f"{_fmt(raw['1_thread'])}/s on 1",
                     f"**{a['ratio_sign_in_vs_raw_hashes']:.2f}×**", "≥ 0.8×",
                     _goal(a["ratio_sign_in_vs_raw_hashes"] >= 0.8)])
        t = a.get("token_verification") or {}
        if t:
            rows.append(["5. Token verification", f"decode_token p50 {t['decode_token_us']['p50']} µs; "
                         f"resolve_caller (with session check) p50 {t['resolve_caller_us']['p50']} µs, "
                         f"p95 {t['resolve_caller_us']['p95']} µs per request", "—", "—", "—", "—"])
    d = results.get("dispatch")
    if d:
        for key in ("push_latency", "push_latency_relay_threads"):
            if key not in d:
                continue
            p, ours, ref = d[key], d[key]["segbase"], d[key]["reference_notify_relay"]
            how = (f", DISPATCH_RELAY_THREADS={p['relay_threads']}"
                   + (": every attempt a Celery task" if p["relay_threads"] == 0 else ": the relay POSTs")
                   ) if "relay_threads" in p else ""
            rows.append([f"6. Dispatch latency (push{how}) @ {p['rate_per_s']:g} jobs/s",
                         f"insert committed → backend receives the signed job: p50 {_fmt(ours['p50_ms'])} ms, p99 "
                         f"{_fmt(ours['p99_ms'])} ms ({p['received']}/{p['jobs']} received; sustained: "
                         f"{'yes' if p['sustained'] else 'no'})",
                         f"NOTIFY → minimal relay → POST: p50 {_fmt(ref['p50_ms'])} ms, p99 {_fmt(ref['p99_ms'])} ms",
                         f"**{p['ratio_p99_vs_reference']:.1f}×** p99", "p99 ≤ 100 ms",
                         _goal(ours["p99_ms"] <= 100 and p["received"] == p["jobs"])])
        for run in d["claim"]["runs"]:
            rows.append([f"6. Claim throughput, {d['claim']['workers']} pull workers, max={run['batch']}",
                         f"{run['claimed_http']:,} jobs leased over HTTP: {_fmt(run['http_per_s'])}/s "
                         f"(each leased once: {'yes' if run['unique_http'] else '**no**'})",
                         f"the same claims as SQL on {d['claim']['workers']} connections: {_fmt(run['sql_per_s'])}/s",
                         f"**{run['ratio_http_vs_sql']:.2f}×**", "—", "—"])
    st = results.get("storage")
    if st:
        for direction in ("upload", "download"):
            ratio = st[f"ratio_{direction}_vs_cp"]
            cpu = st.get("api_cpu_s_per_100_mb", {}).get(direction)
            durable = st.get("ratio_upload_vs_durable_copy") if direction == "upload" else None
            client = st.get("client_cpu_s_per_100_mb") or {}
            curl = st.get("curl")  # absent from reports saved before the bulk client was the headline
            if curl:
                how = (f"client bench/bulk_http.py (in-process, {'os.sendfile' if direction == 'upload' else 'os.splice'}"
                       f", its CPU {client.get(direction)} s per 100 MB); with curl: "
                       f"{_fmt(curl[f'{direction}_mb_per_s'])} MB/s ({curl[f'ratio_{direction}_vs_cp']:.2f}× cp; curl's "
                       f"own CPU {curl['client_cpu_s_per_100_mb'][direction]} s per 100 MB, start-up and exit "
                       f"{curl['startup_exit_ms']} ms)")
            else:
                how = "client curl"
            rows.append([f"7. Storage {direction}, {st['size_mb']} MB file",
                         f"{_fmt(st[f'{direction}_mb_per_s'])} MB/s through /storage/v1 (file backend, median of "
                         f"{st['repeats']}; the upload is fsynced before its 2xx"
                         + (f"; API CPU {cpu} s per 100 MB" if cpu is not None else "") + f"; {how})",
                         f"`cp` of the same file on the same disk: {_fmt(st['cp_mb_per_s'])} MB/s (page cache, "
                         f"no fsync; its CPU {client.get('cp', '?')} s per 100 MB)"
                         + (f"; made durable (`dd conv=fsync`): {_fmt(st['durable_copy_mb_per_s'])} "
                            f"MB/s, upload {durable:.2f}× of it" if durable is not None else "")
                         + (f"; the floor, the same bytes over TCP into segbase's blob writer without HTTP or "
                            f"database (bench/durable_receiver.py): {_fmt(st['floor_mb_per_s'])} MB/s = "
                            f"{st['ratio_floor_vs_cp']:.2f}× cp, upload {st['ratio_upload_vs_floor']:.2f}× of it"
                            if direction == "upload" and "floor_mb_per_s" in st else ""),
                         f"**{ratio:.2f}×**", "≥ 0.5×", _goal(ratio >= 0.5)])
    em = results.get("rest_embed")
    if em:
        plain, embedded = em["http"]["plain"], em["http"]["embedded"]
        sql_ms = em["sql_p50_ms"]
        rows.append(["8. Embedding via /rest/v1", f"`select=*,projects(name)`, 20 latest of {em['results']:,} results: "
                     f"p50 {_fmt(embedded['p50'])} ms, {_fmt(embedded['rps'])} req/s ({em['sender']}); as SQL: "
                     f"{sql_ms['embedded']:.3f} ms p50",
                     f"the same list without the embed: p50 {_fmt(plain['p50'])} ms, {_fmt(plain['rps'])} req/s; "
                     f"a hand-written join as SQL: {sql_ms['hand-written join']:.3f} ms p50",
                     f"**{em['ratio_http_embedded_vs_plain_p50']:.2f}×** p50 (SQL "
                     f"{em['ratio_sql_embedded_vs_hand_written']:.2f}× the hand-written join)", "—", "—"])
    rr = results.get("realtime_rls")
    if rr:
        for label, key in (("1 API process", "one_api_process"), ("2 API processes", "two_api_processes")):
            one = rr.get(key)
            if not one:
                continue
            shared, ref = one["shared_rls"], one["owner_routed_reference"]
            rows.append([f"9. Realtime on a shared RLS table, {label}",
                         f"{shared['subscribers']} subscribers, {_fmt(shared['changes_per_s'])} changes/s, each "
                         f"checked as every subscriber: {shared['frames']:,}/{shared['frames_expected']:,} "
                         f"frames, p95 {_fmt(shared.get('p95_ms', 0))} ms, DB CPU "
                         f"{_fmt(shared['api_db_cpu_ms_per_change'])} ms per change",
                         f"owner-routed `segmentation_results`, same sockets: p95 {_fmt(ref.get('p95_ms', 0))} ms, "
                         f"DB CPU {_fmt(ref['api_db_cpu_ms_per_change'])} ms per change",
                         f"**{shared.get('p95_ms', 0) / max(ref.get('p95_ms', 0), 1e-9):.1f}×** p95", "—", "—"])
        recovery = (rr.get("one_api_process") or {}).get("recovery")
        if recovery:
            plain = recovery["plain join"]
            rows.append(["9. Realtime recovery per rejoin (`since`)",
                         "; ".join(f"{label}: {r['replayed']} changes replayed, p50 {_fmt(r['p50_ms'])} ms "
                                   f"(+{r['extra_ms_per_replayed_change']} ms per change)"
                                   for label, r in recovery.items() if label != "plain join"),
                         f"a plain join: p50 {_fmt(plain['p50_ms'])} ms", "—", "—", "—"])
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _profiles(profiles: dict) -> str:
    out = []
    for name, prof in (profiles or {}).items():
        if "error" in prof:
            out.append(f"- **{name}**: {prof['error']}")
            continue
        busy = ", ".join(f"{v}%" for v in prof["busy_pct_per_process"].values())
        layers = ", ".join(f"{k} {v}%" for k, v in list(prof["busy_by_layer_pct"].items())[:5])
        leaves = ", ".join(f"`{k}` {v}%" for k, v in list(prof["busy_top_leaf_frames_pct"].items())[:4])
        outside = ", ".join(f"{k} {v}%" for k, v in list(prof["outside_busy_by_layer_pct"].items())[:3])
        out.append(f"- **{name}** ({prof['samples']:,} samples, {prof['processes']} process(es); busy share per "
                   f"process: {busy}). Busy time by layer: {layers or 'none'}. Top frames: {leaves or 'none'}. "
                   f"Outside the path's work: {outside or 'none'}.")
    return "\n".join(out) if out else "_no profile in this run_"


def _strip_profiles(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_profiles(v) for k, v in value.items() if k != "profiles"}
    if isinstance(value, list):
        return [_strip_profiles(v) for v in value]
    return value


SCALING_PNG = "benchmarks-scaling.png"  # beside the report; bench/run.py draws it (bench.scaling.plot)


def _scaling(sc: dict) -> list[str]:
    rows = [[str(c["api_processes"]), f"{c['worker_processes']} × {c['worker_concurrency']}",
             _fmt(c["accepted_per_s"]), _fmt(c["applied_per_s"]), _fmt(c["segbase_cpu_ms_per_event"]),
             _fmt(c["cpu_ms_per_event"].get("load generator (wrk)", 0)), ", ".join(f"{x:.1f}" for x in c["load_average"])]
            for c in sc["configurations"]]
    loads = [[f"{_fmt(r['offered_per_s'])}/s (open loop)" if r["offered_per_s"] else "as fast as it goes (closed loop)",
              _fmt(r["applied_per_s"]), _fmt(r["segbase_cpu_ms_per_event"]),
              ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["cpu_ms_per_event"].items(), key=lambda kv: -kv[1])[:4]),
              ", ".join(f"{x:.1f}" for x in r["load_average"])]
             for r in sc["cpu_by_load"]]
    return ["## Scaling", "",
            f"{sc['events']:,} done events per configuration, wrk closed loop on {sc['connections']} connections, "
            "each configuration on a stack of its own (bench/scaling.py). CPU per event: every segbase process and "
            "its PostgreSQL backends (utime + stime from /proc) ÷ events; the sender's own CPU beside it. The load "
            "average is the machine's (1, 5, 15 min) when the configuration finished: the 2 cores are shared.", "",
            _table(["API processes", "worker processes × concurrency", "accepted/s", "applied/s",
                    "segbase CPU ms/event", "wrk CPU ms/event", "load average"], rows), "",
            "CPU per event as the offered load grows (the second row of the table above):", "",
            _table(["offered", "applied/s", "segbase CPU ms/event", "largest shares (ms/event)", "load average"],
                   loads), "",
            "Below a few dozen events/s the fixed cost of the idle stack (pollers, heartbeats, the relay's and the "
            "sweeper's loops) dominates each event's share; under load the group commit and the workers' batches "
            "spread one transaction and one message over many events, so CPU per event falls.", "",
            f"![Applied events/s by worker and API processes; CPU per event by load]({SCALING_PNG})", ""]


def render(report: dict) -> str:
    results = report["results"]
    m = report["machine"]
    parts = [
        "# Benchmarks",
        "",
        "_Written by `make bench` (bench/run.py); do not edit by hand — re-run it. Every figure is next to a "
        "reference measured in the same run on the same machine, because the machine is shared and noisy: the "
        "ratios are the result, the absolute numbers are context._",
        "",
        f"- Run: {report['started']} → {report['finished']} (UTC), command `{report.get('command', 'make bench')}`",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python "
        f"{m['python']}; load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])} "
        "(other engineers' test runs share these 2 cores)",
        f"- PostgreSQL {report['versions']['postgresql']} (synchronous_commit={report['versions']['synchronous_commit']}, "
        f"fsync={report['versions']['fsync']}, shared_buffers={report['versions']['shared_buffers']}, "
        f"max_connections={report['versions']['max_connections']}), Redis {report['versions']['redis']}, "
        f"{m['pgbench']}, {m.get('wrk', 'wrk ?')}, py-spy {m['py-spy']}",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        "- Stack (bench/stack.py): a fresh database migrated with db.migrate, `segbase api` (gunicorn + gevent), "
        "`segbase relay`, 2 × `segbase worker`, its own INSTANCE_ID and Redis DB 2; all load on loopback. "
        "Settings: " + ", ".join(f"{k}={v}" for k, v in report["settings"].items()),
        f"- File-descriptor limit (RLIMIT_NOFILE, raised to the hard limit with resource.setrlimit in the bench "
        f"process, inherited by the servers and the client processes): {report['fd_limit']:,}",
        "- Durations (s): " + ", ".join(f"{k} {v}" for k, v in report["durations_s"].items()),
        "",
        "## Figures and ratios",
        "",
        _table(["Benchmark", "segbase", "Reference (same run)", "Ratio", "Goal", ""], summary_rows(results)),
        "",
    ]
    if results.get("scaling"):
        parts += _scaling(results["scaling"])
    parts += [
        "## What dominates each path (py-spy)",
        "",
        STRUCTURE,
        "",
    ]
    titles = {"pipeline": "Pipeline (a profile pass after the measured run)",
              "e2e": "End-to-end (a profile pass at 200/s after the measured rates)",
              "fanout": "Fan-out (a profile pass: a change stream after the measured one)", "rls": "/rest/v1 list (a profile pass after the timed loop)",
              "auth": "Sign-in (a profile pass after the measured load)"}
    for name, title in titles.items():
        res = results.get(name)
        if not res:
            continue
        profiles = res.get("profiles") or {}
        if name == "e2e":
            profiles = (res.get("profile_pass") or {}).get("profiles") or {}
        if name == "fanout":
            profiles = res["segbase"].get("profiles") or {}
        parts += [f"### {title}", "", _profiles(profiles), ""]
        if name == "pipeline":
            parts += [_pipeline_findings(res), "", PIPELINE_ADVICE, ""]
        if name == "e2e" and results.get("pipeline"):
            parts += [_e2e_findings(res, results["pipeline"]), ""]
    parts += ["## Closing note", "",
              f"The figures table again, from `{report.get('command', 'make bench')}` (load average "
              f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])} at the start"
              + (f", {', '.join(f'{x:.2f}' for x in report['load_average_at_end'])} at the end"
                 if report.get("load_average_at_end") else "") + "); the commands follow.", "",
              _table(["Benchmark", "segbase", "Reference (same run)", "Ratio", "Goal", ""], summary_rows(results)),
              ""]
    parts += ["## Method and choices", "", METHOD, "",
              "## Commands", "", "```", COMMANDS.rstrip(), "```", "",
              "## Sizes used", "", "```json", json.dumps(report["sizes"], indent=1, default=str), "```", "",
              "## Raw numbers", "", "```json", json.dumps(_strip_profiles(results), indent=1, default=str), "```", ""]
    return "\n".join(parts)
