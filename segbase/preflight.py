"""Fail fast, with one clear message, when PostgreSQL or Redis is not reachable."""
from __future__ import annotations

import argparse
import sys

import psycopg
import redis

from db.urls import libpq_url
from schemas.settings import Settings

HOW_TO_START = ("start it (Debian: `pg_ctlcluster 15 main start`, `redis-server --daemonize yes`), point "
                "DATABASE_URL / REDIS_URL at a running one, or run `docker compose up -d postgres redis`")


def check_services(settings: Settings, *, maintenance_db: bool = False) -> list[str]:
    problems = []
    url = libpq_url(settings.database_url)
    try:
        with psycopg.connect(url, connect_timeout=3, dbname="postgres" if maintenance_db else None):
            pass
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            pass  # `segbase migrate` creates the database
        else:
            problems.append(f"PostgreSQL is not reachable at {url.split('@')[-1]}: {str(exc).strip().splitlines()[0]}")
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis is not reachable at {settings.redis_url.split('@')[-1]}: {exc}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--for-tests", action="store_true", help="the test suite uses its own databases")
    args = parser.parse_args()
    settings = Settings(_env_file=None) if args.for_tests else Settings()
    problems = check_services(settings, maintenance_db=args.for_tests)
    for problem in problems:
        print(f"segbase: {problem}", file=sys.stderr)
    if problems:
        print(f"segbase: {HOW_TO_START}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
