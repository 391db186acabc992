"""Fail fast, with one clear message, when PostgreSQL or Redis is not reachable or the API's port is taken."""
from __future__ import annotations

import argparse
import os
import sys

import redis

from db.urls import authenticator_libpq_url, libpq_url
from schemas.settings import Settings
from segbase.ports import port_problem

# _PSYCOPG_LATE: the API's gunicorn master imports this module for the port check before it forks; psycopg picks
# its wait function when first imported (a blocking C wait unless gevent has patched `select`), so psycopg must be
# imported first in the gevent-patched workers, or every query there blocks the whole worker (a long-poll freezes it).
HOW_TO_START = ("start it (Debian: `pg_ctlcluster 15 main start`, `redis-server --daemonize yes`), point "
                "DATABASE_URL / REDIS_URL at a running one, or run both in containers on local ports: "
                "`docker compose -f docker-compose.dev.yml up -d`")


def check_services(settings: Settings, *, maintenance_db: bool = False) -> list[str]:
    import psycopg  # late: see _PSYCOPG_LATE

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


def check_authenticator_login(settings: Settings) -> str | None:
    """A message naming DB_AUTHENTICATOR_PASSWORD when PostgreSQL refuses it; None otherwise (an unreachable
    server is not this check's business: the processes wait for it and answer 503 meanwhile)."""
    import psycopg  # late: see _PSYCOPG_LATE

    try:
        with psycopg.connect(authenticator_libpq_url(settings), connect_timeout=5,
                             application_name="segbase-preflight"):
            return None
    except psycopg.OperationalError as exc:
        text = str(exc)
        if exc.sqlstate == "28P01" or "password authentication failed" in text or "no password supplied" in text:
            return ("PostgreSQL refused the `authenticator` login: DB_AUTHENTICATOR_PASSWORD is not the role's "
                    "password. The role is shared by every stack on this PostgreSQL server and keeps the password "
                    "it was created with; use that one, or change it on purpose with "
                    "`segbase migrate --rotate-authenticator-password`.")
        return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--for-tests", action="store_true", help="the test suite uses its own databases")
    parser.add_argument("--authenticator-login", action="store_true",
                        help="only check that DB_AUTHENTICATOR_PASSWORD logs in (segbase api runs this)")
    args = parser.parse_args()
    if args.authenticator_login:
        problem = check_authenticator_login(Settings(_env_file=os.environ.get("SEGBASE_ENV_FILE", ".env") or None))
        if problem:
            print(f"segbase: {problem}", file=sys.stderr)
        return 1 if problem else 0
    settings = Settings(_env_file=None) if args.for_tests else Settings()
    problems = check_services(settings, maintenance_db=args.for_tests)
    for problem in problems:
        print(f"segbase: {problem}", file=sys.stderr)
    if problems:
        print(f"segbase: {HOW_TO_START}", file=sys.stderr)
    taken = None if args.for_tests else port_problem(settings.api_host, settings.api_port)
    if taken:
        print(f"segbase: {taken}", file=sys.stderr)
    return 1 if problems or taken else 0


if __name__ == "__main__":
    raise SystemExit(main())
