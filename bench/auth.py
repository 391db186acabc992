"""Auth on the benchmark stack: sign-in throughput and latency at concurrency 20 next to raw argon2id hashes/s with
the server's parameters in the same run, and the cost of verifying a token per request (api/identity.py: the JWT
alone, and resolve_caller with its session check).

The sign-ins are sent by wrk (bench/sender.py, closed loop on `concurrency` connections, each POST a password
grant for one of `users` accounts in turn): the server is what is measured, and a Python client's own CPU on the
same two cores would be taken from the hashing (bench/auth_bench.py keeps the httpx load for a server of its own).

    .venv/bin/python -m bench.auth [--requests 400] [--concurrency 20]
"""
from __future__ import annotations

import argparse
import time
import uuid

import httpx

from api.auth.passwords import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST
from api.identity import decode_token, resolve_caller
from bench.auth_bench import PASSWORD, raw_hashes_per_second
from bench.common import Sampler, percentile
from bench.sender import Wrk
from bench.stack import Stack, pretty
from db.engine import create_app_engine

SIGN_IN_WORK = ("token (api/auth/__init__.py", "argon2")


def verification_cost(stack: Stack, token: str, count: int) -> dict:
    """Microseconds per call, in this process: decode_token (HS256 signature + claims) and resolve_caller (the
    same, plus the session-alive check every surface makes)."""
    settings = stack.settings
    anon = stack.anon_key()
    engine = create_app_engine(settings, pool_size=1, application_name="segbase-bench")
    try:
        resolve_caller(apikey=anon, bearer=token, settings=settings, engine=engine)
        out = {}
        for name, call in (("decode_token_us", lambda: decode_token(token, settings)),
                           ("resolve_caller_us", lambda: resolve_caller(apikey=anon, bearer=token,
                                                                        settings=settings, engine=engine))):
            samples = []
            for _ in range(count):
                t0 = time.perf_counter()
                call()
                samples.append((time.perf_counter() - t0) * 1e6)
            out[name] = {"p50": round(percentile(samples, 50), 1), "p95": round(percentile(samples, 95), 1)}
        return out
    finally:
        engine.dispose()


def sign_in_wrk(url: str, anon: str, emails: list[str], requests: int, concurrency: int) -> dict:
    """`requests` password grants by wrk on `concurrency` connections (closed loop)."""
    bodies = [{"email": emails[n % len(emails)], "password": PASSWORD} for n in range(requests)]
    sent = Wrk(f"{url}/auth/v1/token?grant_type=password", bodies, connections=concurrency,
               headers={"apikey": anon, "Authorization": f"Bearer {anon}",
                        "X-Supabase-Api-Version": "2024-01-01"}).run()
    ok = sent.statuses.get(200, 0)
    return {"requests": requests, "ok": ok, "failures": sent.answered - ok + (requests - sent.answered),
            **sent.latency, "throughput_per_s": round(ok / sent.wall_s, 1) if sent.wall_s > 0 else 0.0,
            "sender": sent.command, "sender_cpu_ms_per_request": round(1000 * sent.cpu_s / requests, 3)}


def run(stack: Stack, *, requests: int = 400, concurrency: int = 20, users: int = 40, hashes: int = 60,
        verify_calls: int = 5000, profile_seconds: int = 0) -> dict:
    anon = stack.anon_key()
    run_tag = uuid.uuid4().hex[:6]
    emails = [f"auth-{n}-{run_tag}@example.com" for n in range(users)]
    with httpx.Client(timeout=60, headers={"apikey": anon}) as client:
        for email in emails:
            client.post(f"{stack.url}/auth/v1/signup", json={"email": email, "password": PASSWORD}
                        ).raise_for_status()
        token = client.post(f"{stack.url}/auth/v1/token?grant_type=password",
                            json={"email": emails[0], "password": PASSWORD}).json().get("access_token")
    sign_in_wrk(stack.url, anon, emails, min(40, requests), concurrency)  # warm-up
    load = sign_in_wrk(stack.url, anon, emails, requests, concurrency)
    sampler = None
    if profile_seconds:  # a pass of its own: py-spy's sampling takes CPU from the hashing it would explain
        sampler = Sampler(stack.api.pid, profile_seconds)
        sign_in_wrk(stack.url, anon, emails, requests, concurrency)
    threads = stack.settings.auth_hash_threads
    raw_pool = raw_hashes_per_second(threads, hashes)
    raw_single = raw_hashes_per_second(1, max(1, hashes // 2))
    result = {
        "argon2id": {"memory_kib": ARGON2_MEMORY_KIB, "time_cost": ARGON2_TIME_COST,
                     "parallelism": ARGON2_PARALLELISM},
        "auth_hash_threads": threads, "concurrency": concurrency, "sign_in": load,
        "raw_argon2id_hashes_per_s": {"1_thread": round(raw_single, 1), f"{threads}_threads": round(raw_pool, 1)},
        "ratio_sign_in_vs_raw_hashes": round(load["throughput_per_s"] / raw_pool, 3),
        "token_verification": verification_cost(stack, token, verify_calls) if token else {},
    }
    if sampler:
        result["profiles"] = {"api": sampler.summary(SIGN_IN_WORK)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    stack = Stack(tag=f"auth{uuid.uuid4().hex[:4]}", workers=0, relay=False).start()
    try:
        print(pretty(run(stack, requests=args.requests, concurrency=args.concurrency)))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
