"""Dispatch helpers: results submitted as their owner, job rows read as the owner of the database, and clocks moved
by editing timestamps (tests never sleep through a lease or a backoff)."""
from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from db.uow import unit_of_work
from schemas.settings import Settings
from tests.support.database import make_test_settings
from tests.support.factories import TestUser
from tests.support.pipeline import stop_all, user_caller
from tests.support.processes import ROOT, SegbaseProcess, wait_for
from tests.support.receiver import Receiver


def submit(engine: Engine, user: TestUser, count: int = 1, *, source: str = "https://img.example/in.png",
           prompt: str = "a cat") -> list[str]:
    """Submit `count` pending results as the user (RLS, the reservation trigger, the enqueue trigger)."""
    with unit_of_work(engine, user_caller(user.id)) as uow:
        return [str(uow.execute("insert into public.segmentation_results (source_image_url, text_prompt) "
                                "values (:source, :prompt) returning id",
                                {"source": source, "prompt": prompt}).scalar_one()) for _ in range(count)]


@dataclass
class JobRow:
    state: str
    outcome: str | None
    due_at: datetime | None
    attempt_id: str | None
    attempts: int
    worker_id: str | None
    first_dispatched_at: datetime | None
    lease_expiries: int
    last_error: str | None


def job(conn: psycopg.Connection, job_id: str) -> JobRow | None:
    row = conn.execute("select state, outcome, due_at, attempt_id::text, attempts, worker_id, first_dispatched_at, "
                       "lease_expiries, last_error from internal.dispatch_jobs where result_id = %s",
                       (job_id,)).fetchone()
    return JobRow(*row) if row else None


def result(conn: psycopg.Connection, result_id: str) -> dict[str, Any]:
    status, metadata = conn.execute("select status::text, metadata from public.segmentation_results where id = %s",
                                    (result_id,)).fetchone()
    return {"status": status, "metadata": metadata}


def reserved(conn: psycopg.Connection, user_id: str) -> int:
    return conn.execute("select coalesce(sum(price), 0) from public.segmentation_results where user_id = %s "
                        "and status in ('pending', 'processing')", (user_id,)).fetchone()[0]


def expire_holds(conn: psycopg.Connection, job_ids: list[str]) -> None:
    """Move the holds (leases, push attempts) of these jobs into the past, as if their time ran out."""
    conn.execute("update internal.dispatch_jobs set due_at = now() - interval '1 second' "
                 "where result_id = any(%s::uuid[]) and state in ('sending', 'leased')", (job_ids,))


def make_due(conn: psycopg.Connection, job_ids: list[str]) -> None:
    """Skip the backoff of queued jobs: due now."""
    conn.execute("update internal.dispatch_jobs set due_at = now() - interval '1 second' "
                 "where result_id = any(%s::uuid[]) and state = 'queued'", (job_ids,))


def endpoint(conn: psycopg.Connection) -> dict[str, Any]:
    cursor = conn.execute("select * from internal.dispatch_endpoint")
    names = [column.name for column in cursor.description]
    return dict(zip(names, cursor.fetchone()))


SECRET = "whsec_" + base64.b64encode(b"segbase-dispatch-test-secret-32b").decode()
TIMEOUT_SECONDS = 2.0  # DISPATCH_TIMEOUT_SECONDS of the push tests


def push_settings(base: Settings, receiver: Receiver, suffix: str, **overrides) -> Settings:
    values = dict(api_port=base.api_port, result_url_allow_http=base.result_url_allow_http,
                  dispatch_mode="push", dispatch_url=receiver.url, dispatch_signing_secret=SECRET,
                  dispatch_timeout_seconds=TIMEOUT_SECONDS, dispatch_retry_schedule="0,0.3,0.3,0.3,0.3",
                  dispatch_retry_jitter=0, dispatch_circuit_failure_threshold=3, dispatch_circuit_open_seconds=1,
                  dispatch_circuit_max_open_seconds=2, dispatch_max_in_flight=4)
    values.update(overrides)
    return make_test_settings(base.database_url, f"{base.instance_id}{suffix}", **values)


class Processes:
    """The processes a test starts, each registered before it is waited for, so that `stop()` ends every one of
    them however the test ends — a start that times out included."""

    def __init__(self) -> None:
        self.started: list[SegbaseProcess] = []

    def start(self, settings: Settings, command: str, *args: str, name: str | None = None,
              ready: str | None = None) -> SegbaseProcess:
        process = SegbaseProcess(settings, command, *args, name=name).start()
        self.started.append(process)
        if ready is not None:
            wait_for(lambda: ready in process.log_text() or not process.alive(), timeout=90,
                     message=f"{name or command} to log {ready!r}")
            assert process.alive(), process.log_text()
        return process

    def worker(self, settings: Settings, name: str, concurrency: int = 2) -> SegbaseProcess:
        return self.start(settings, "worker", "--concurrency", str(concurrency), name=name, ready=" ready.")

    def relay(self, settings: Settings, name: str = "relay") -> SegbaseProcess:
        """A `segbase relay` whose dispatch releaser is active (push settings)."""
        return self.start(settings, "relay", name=name, ready="dispatch releaser active")

    def stop(self) -> None:
        stop_all(*reversed(self.started))
        self.started.clear()


@contextmanager
def processes() -> Iterator[Processes]:
    running = Processes()
    try:
        yield running
    finally:
        running.stop()


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """`segbase <args>` as an operator runs it, with the test's settings (never a developer's .env)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGBASE_", "PYTEST_"))}
    env.update(settings.to_env(), SEGBASE_ENV_FILE="")
    return subprocess.run([sys.executable, "-m", "segbase", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
