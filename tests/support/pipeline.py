"""Pipeline helpers: submitting results, posting webhook events, worker processes, and the figures tests assert on."""
from __future__ import annotations

import base64
import json
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import Engine

from broker.celery_app import queue_name
from db.uow import Caller, unit_of_work
from schemas.settings import Settings
from tests.support.database import make_test_settings, redis_url
from tests.support.factories import TestUser, create_user
from tests.support.processes import SegbaseProcess, wait_for

FAULT_REDIS_DBS = range(8, 16)


REDIS_LOCK_TTL_SECONDS = 1800


MASK_URL = "https://cdn.example/mask.png"


def user_caller(user_id: str) -> Caller:
    return Caller("authenticated", {"sub": user_id, "role": "authenticated", "aud": "authenticated"})


def submit_results(engine: Engine, user: TestUser, count: int) -> list[str]:
    """Submit `count` pending results as the user (their own unit of work, RLS and the reservation trigger)."""
    ids = []
    with unit_of_work(engine, user_caller(user.id)) as uow:
        for _ in range(count):
            ids.append(str(uow.execute("insert into public.segmentation_results (source_image_url, text_prompt) "
                                       "values ('https://img.example/in.png', 'a cat') returning id").scalar_one()))
    return ids


def event_body(task_id: str, status: str = "done", **extra) -> dict:
    body = {"task_id": task_id, "status": status}
    if status == "done":
        body.update(mask_url=MASK_URL, labels=[{"label": "cat", "score": 0.9}])
    body.update(extra)
    return body


def post_event(client: httpx.Client, base_url: str, body, *, key: str = "test-webhook-key",
               headers: dict | None = None) -> httpx.Response:
    all_headers = {"X-API-Key": key, **(headers or {})}
    if isinstance(body, (bytes, str)):
        return client.post(f"{base_url}/functions/v1/process-webhook", content=body,
                           headers={"Content-Type": "application/json", **all_headers})
    return client.post(f"{base_url}/functions/v1/process-webhook", json=body, headers=all_headers)


def start_worker(settings: Settings, name: str = "worker", concurrency: int = 2) -> SegbaseProcess:
    """A `segbase worker` process, returned once it consumes from its queue."""
    worker = SegbaseProcess(settings, "worker", "--concurrency", str(concurrency), name=name).start()
    wait_for(lambda: " ready." in worker.log_text() or not worker.alive(), timeout=60,
             message=f"{name} to start")
    assert worker.alive(), worker.log_text()
    return worker


def stop_all(*processes: SegbaseProcess) -> None:
    """SIGTERM every process first, then wait for each: shutdowns overlap instead of adding up."""
    for process in processes:
        process.signal(signal.SIGTERM)
    for process in processes:
        process.stop()


@dataclass
class Figures:
    """What happened to a set of results and the inbox events aimed at them."""

    results: int
    done: int
    error: int
    in_flight: int
    events: int
    states: dict[str, int]
    charges: int
    double_charged: int

    @property
    def unfinished_events(self) -> int:
        return self.states.get("received", 0)


def figures(conn: psycopg.Connection, result_ids: list[str]) -> Figures:
    """Statuses, inbox states and charges read from ONE snapshot, so the three always agree."""
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        return _figures_in_snapshot(conn, result_ids)


def _figures_in_snapshot(conn: psycopg.Connection, result_ids: list[str]) -> Figures:
    statuses = dict(conn.execute(
        "select status::text, count(*) from public.segmentation_results where id = any(%s::uuid[]) group by 1",
        (result_ids,)).fetchall())
    states = dict(conn.execute(
        "select state, count(*) from internal.webhook_inbox where result_id = any(%s::uuid[]) group by 1",
        (result_ids,)).fetchall())
    charges, double = conn.execute(
        "select count(*), count(*) - count(distinct metadata ->> 'result_id') from public.usage_logs "
        "where action = 'segmentation' and metadata ->> 'result_id' = any(%s::text[])", (result_ids,)).fetchone()
    return Figures(results=len(result_ids), done=statuses.get("done", 0), error=statuses.get("error", 0),
                   in_flight=statuses.get("pending", 0) + statuses.get("processing", 0),
                   events=sum(states.values()), states=states, charges=charges, double_charged=double)


def wait_until_final(conn: psycopg.Connection, result_ids: list[str], timeout: float = 120) -> Figures:
    """Wait until no inbox event aimed at `result_ids` is still `received`."""
    return wait_for(lambda: (f := figures(conn, result_ids)).unfinished_events == 0 and f.events > 0 and f,
                    timeout=timeout, interval=0.2, message="every inbox event to reach a final state")


def balances(conn: psycopg.Connection, users: list[TestUser]) -> dict[str, int]:
    rows = conn.execute("select id::text, credits from public.users_profile where id = any(%s::uuid[])",
                        ([u.id for u in users],)).fetchall()
    return dict(rows)


@contextmanager
def claimed_redis_db() -> Iterator[int]:
    """Claim a Redis database number for one fault test (SETNX on DB 0), flushed before and after use."""
    control = redis.Redis.from_url(redis_url(0))
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    try:
        claimed = next((n for n in FAULT_REDIS_DBS
                        if control.set(f"segbase-tests:redis-db-claim:{n}", token, nx=True,
                                       ex=REDIS_LOCK_TTL_SECONDS)), None)
        if claimed is None:
            pytest.fail("every fault-test Redis database (8-15) is claimed by another run")
        own = redis.Redis.from_url(redis_url(claimed))
        own.flushdb()
        try:
            yield claimed
        finally:
            own.flushdb()
            own.close()
            if control.get(f"segbase-tests:redis-db-claim:{claimed}") == token.encode():
                control.delete(f"segbase-tests:redis-db-claim:{claimed}")
    finally:
        control.close()


def fault_settings(settings: Settings, suffix: str, redis_db: int, **overrides) -> Settings:
    """The session's database, an INSTANCE_ID and Redis database of the fault test's own."""
    return make_test_settings(settings.database_url, f"{settings.instance_id}{suffix}",
                              redis_url=redis_url(redis_db), **overrides)


def new_users(settings: Settings, count: int, credits: int) -> list[TestUser]:
    return [create_user(settings, credits=credits) for _ in range(count)]


def queued_tasks(settings: Settings) -> list[tuple[str, list]]:
    """The Celery messages waiting in the deployment's queue (oldest first): (task name, positional args)."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        raw = client.lrange(settings.redis_key("kombu") + ":" + queue_name(settings), 0, -1)
    finally:
        client.close()
    tasks = []
    for item in reversed(raw):  # kombu LPUSHes and consumers BRPOP: the oldest is last
        message = json.loads(item)
        args = json.loads(base64.b64decode(message["body"]))[0]
        tasks.append((message["headers"]["task"], args))
    return tasks
