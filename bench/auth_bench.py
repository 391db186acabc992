"""Sign-in latency and throughput at concurrency 20 against a live `segbase api`, next to raw argon2id hashes/s
measured in the same run (the reference: a password sign-in is one argon2id verify plus two short transactions).

    .venv/bin/python -m bench.auth_bench [--requests 400] [--concurrency 20] [--users 40]

Creates a scratch database (dropped afterwards) and a Redis namespace of its own; rate limits are raised for the
run. Client and server share the machine's cores, as they would in a single-host deployment.
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from api.auth.passwords import (
    ARGON2_MEMORY_KIB,
    ARGON2_PARALLELISM,
    ARGON2_TIME_COST,
    new_argon2,
)
from api.tokens import api_key
from bench.common import percentile
from db.migrate import migrate
from tests.support.database import create_database, drop_database, make_test_settings
from tests.support.processes import ApiProcess

PASSWORD = "correct horse battery staple"


def raw_hashes_per_second(threads: int, count: int) -> float:
    """argon2id hashes/s with `threads` OS threads (argon2-cffi releases the GIL), the server's parameters."""
    hasher = new_argon2()
    per_thread = max(1, count // threads)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda _: [hasher.hash(PASSWORD) for _ in range(per_thread)], range(threads)))
    return per_thread * threads / (time.perf_counter() - started)


def sign_in_load(url: str, anon: str, emails: list[str], requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    counter = iter(range(requests))
    headers = {"apikey": anon, "Authorization": f"Bearer {anon}", "X-Supabase-Api-Version": "2024-01-01"}

    def worker() -> None:
        nonlocal failures
        with httpx.Client(timeout=60, headers=headers) as client:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                body = {"email": emails[index % len(emails)], "password": PASSWORD}
                started = time.perf_counter()
                response = client.post(f"{url}/auth/v1/token?grant_type=password", json=body)
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        failures += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"requests": requests, "ok": len(latencies), "failures": failures,
            "p50_ms": round(percentile(latencies, 50) * 1000, 1),
            "p95_ms": round(percentile(latencies, 95) * 1000, 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
            "throughput_per_s": round(len(latencies) / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--users", type=int, default=40)
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    database = f"segbase_bench_auth_{run}"
    settings = make_test_settings(create_database(database), f"bauth{run}", db_pool_size=5,
                                  auth_rate_limit_sign_in=1_000_000, auth_rate_limit_refresh=1_000_000,
                                  log_level="WARNING")
    server = None
    try:
        migrate(settings, log=lambda *_: None)
        server = ApiProcess(settings).start()
        anon = api_key(settings, "anon")
        emails = [f"bench-{index}-{run}@example.com" for index in range(args.users)]
        with httpx.Client(timeout=60, headers={"apikey": anon}) as client:
            for email in emails:
                client.post(f"{server.url}/auth/v1/signup", json={"email": email, "password": PASSWORD}
                            ).raise_for_status()
        sign_in_load(server.url, anon, emails, min(40, args.requests), args.concurrency)  # warm-up
        pool_threads = settings.auth_hash_threads
        # The raw reference is taken before and after the load and averaged: on a shared machine the rate drifts.
        raw_before = raw_hashes_per_second(pool_threads, 60)
        load = sign_in_load(server.url, anon, emails, args.requests, args.concurrency)
        raw_pool = (raw_before + raw_hashes_per_second(pool_threads, 60)) / 2
        raw_single = raw_hashes_per_second(1, 30)
    finally:
        if server is not None:
            server.stop()
        drop_database(database)

    result = {
        "argon2id": {"memory_kib": ARGON2_MEMORY_KIB, "time_cost": ARGON2_TIME_COST,
                     "parallelism": ARGON2_PARALLELISM},
        "api": {"workers": settings.api_workers, "auth_hash_threads": pool_threads},
        "concurrency": args.concurrency,
        "sign_in": load,
        "raw_argon2id_hashes_per_s": {"1_thread": round(raw_single, 1), f"{pool_threads}_threads": round(raw_pool, 1)},
        "sign_in_vs_raw_pool": round(load["throughput_per_s"] / raw_pool, 2),
    }
    print(json.dumps(result, indent=2))
    print(f"sign-in at concurrency {args.concurrency}: p50 {load['p50_ms']} ms, p95 {load['p95_ms']} ms, "
          f"{load['throughput_per_s']}/s; raw argon2id {raw_pool:.1f} hashes/s on {pool_threads} threads "
          f"({raw_single:.1f}/s on 1) → sign-in reaches {result['sign_in_vs_raw_pool']:.0%} of the raw hash rate")


if __name__ == "__main__":
    main()
