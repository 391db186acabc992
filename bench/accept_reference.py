"""The reference for process-webhook's acceptance: the barest endpoint doing the same durable work, under the same
gunicorn + gevent (one worker process) — parse the JSON body, INSERT one row into a copy of the inbox table
(bench.accept_inbox: same columns, defaults, unique key and indexes) with psycopg in autocommit (one transaction,
one commit per request), LPUSH the new id to one Redis list, answer 202 with the id. No authentication, no
validation model, no group commit, no Celery.

    ACCEPT_DATABASE_URL=... ACCEPT_REDIS_URL=... ACCEPT_LIST=... \\
    gunicorn -k gevent -w 1 --worker-connections 10000 -b 127.0.0.1:PORT bench.accept_reference:app

bench/pipeline.py starts it (`start_accept_reference`) and drives it with the same wrk command and bodies as
segbase's endpoint. psycopg is imported here, in the gunicorn worker after gevent patched it (no --preload), so
its waits are cooperative.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile

import httpx
import psycopg
import redis
from flask import Flask, jsonify, request
from psycopg_pool import ConnectionPool

from tests.support.processes import ROOT, free_port, wait_for

CREATE_TABLE = ("create schema if not exists bench; "
                "create table if not exists bench.accept_inbox (like internal.webhook_inbox including all)")
INSERT = ("insert into bench.accept_inbox (idempotency_key, result_id, event_status, payload) "
          "values (%s, %s, %s, %s) on conflict (idempotency_key) do nothing returning id::text")

app = Flask(__name__)
_pool: ConnectionPool | None = None
_redis: redis.Redis | None = None


def _connections() -> tuple[ConnectionPool, redis.Redis]:
    global _pool, _redis
    if _pool is None:  # in the worker, after the fork: 10 connections, as segbase's DB_POOL_SIZE in the bench
        _pool = ConnectionPool(os.environ["ACCEPT_DATABASE_URL"], min_size=10, max_size=10,
                               kwargs={"autocommit": True}, open=True)
        _redis = redis.Redis.from_url(os.environ["ACCEPT_REDIS_URL"])
    return _pool, _redis


@app.post("/accept")
def accept():
    pool, client = _connections()
    raw = request.get_data()
    body = json.loads(raw)
    key = "sha256:" + hashlib.sha256(raw).hexdigest()
    with pool.connection() as conn:
        row = conn.execute(INSERT, (key, body["task_id"], body["status"], json.dumps(body))).fetchone()
    if row is None:
        return jsonify(duplicate=True), 200
    client.lpush(os.environ["ACCEPT_LIST"], row[0])
    return jsonify(event_id=row[0]), 202


@app.get("/healthz")
def healthz():
    return "ok"


def start_accept_reference(database_url: str, redis_url: str, list_key: str) -> tuple[subprocess.Popen, str]:
    """Create bench.accept_inbox in `database_url` (libpq form) and start the server; returns (process, base URL)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(CREATE_TABLE)
    port = free_port()
    env = {"ACCEPT_DATABASE_URL": database_url, "ACCEPT_REDIS_URL": redis_url, "ACCEPT_LIST": list_key,
           "PATH": "/usr/bin:/bin"}
    # Its output goes to a file, shown only if it fails to start: at SIGTERM, psycopg_pool's finaliser complains
    # under gevent (it joins its own greenlet) with a traceback per pooled connection, which means nothing here.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--worker-connections",
                             "10000", "--keep-alive", "5", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                             "bench.accept_reference:app"], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(lambda: healthy() or proc.poll() is not None, 30, message="accept reference server")
        if proc.poll() is not None:
            raise RuntimeError("accept reference server exited")
    except BaseException:
        proc.terminate()
        log.seek(0)
        print(log.read()[-4000:], file=sys.stderr)
        raise
    finally:
        log.close()  # the child keeps its own descriptor
    return proc, url
