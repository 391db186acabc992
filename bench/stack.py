"""The benchmark's own stack: a fresh database migrated with db.migrate, `segbase api`, `segbase relay` and N
`segbase worker` processes, under an INSTANCE_ID of its own (its own Celery queue, Redis keys and pub/sub
channel). PostgreSQL and Redis are the machine's. Used by every benchmark in bench/ and by the smoke test.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import redis

from api.identity import mint_access_token
from api.tokens import api_key
from db.urls import libpq_url
from schemas.settings import Settings
from tests.support.database import (
    create_database,
    drop_database,
    make_test_settings,
    migrate_serialised,
    redis_url,
)
from tests.support.processes import ApiProcess, SegbaseProcess, wait_for

BENCH_REDIS_DB = 2  # tests use 1 (and 8-15 for fault tests), the development stack 0
WEBHOOK_KEY = "bench-webhook-key"
PASSWORD = "correct horse battery staple"  # bench/auth_bench.py signs in with it


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it); return the limit used."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    """Resident set size of one process, from /proc (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """Direct children of `pid` (gunicorn's worker under `segbase api`, Celery's pool under `segbase worker`)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


@dataclass
class BenchUser:
    id: str
    email: str
    access_token: str


# Benchmarks open thousands of sockets from one address and several per user: the per-client realtime limits
# (docs/REALTIME.md, "Limits") are raised explicitly, and reported with the figures.
BENCH_REALTIME_LIMITS = {"api_worker_connections": 20_000, "realtime_max_sockets_per_ip": 20_000,
                         "realtime_max_sockets_per_user": 100, "realtime_joins_per_second": 1000.0}


@dataclass
class Stack:
    """Start with `Stack(...).start()`, stop with `.stop()` (also drops the database)."""

    workers: int = 2
    worker_concurrency: int = 2
    relay: bool = True
    api_workers: int = 1
    tag: str = "bench"
    overrides: dict = field(default_factory=dict)
    settings: Settings | None = None
    api: ApiProcess | None = None
    processes: list[SegbaseProcess] = field(default_factory=list)
    worker_processes: list[SegbaseProcess] = field(default_factory=list)
    database: str = ""

    def start(self) -> Stack:
        raise_fd_limit()
        run = uuid.uuid4().hex[:8]
        self.database = f"segbase_bench_{self.tag}_{run}"
        url = create_database(self.database)
        values = dict(redis_url=redis_url(BENCH_REDIS_DB), db_pool_size=10,
                      webhook_api_keys=[WEBHOOK_KEY], api_workers=self.api_workers, log_level="INFO",
                      auth_rate_limit_sign_in=10_000_000, auth_rate_limit_refresh=10_000_000,
                      worker_concurrency=self.worker_concurrency, **BENCH_REALTIME_LIMITS)
        values.update(self.overrides)
        self.settings = make_test_settings(url, f"b{self.tag[:6]}{run}", **values)
        try:
            migrate_serialised(self.settings)
            self.api = ApiProcess(self.settings, name="api").start()
            self.processes.append(self.api)
            if self.relay:
                relay = SegbaseProcess(self.settings, "relay").start()
                self.processes.append(relay)
                wait_for(lambda: "relay active" in relay.log_text() or not relay.alive(), 60,
                         message="relay active")
                assert relay.alive(), relay.log_text()
            self.start_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def start_workers(self, extra_env: dict[str, str] | None = None) -> None:
        """`self.workers` worker processes (`extra_env` overrides settings, e.g. INBOX_BATCH_SIZE); returns once
        each is consuming."""
        assert not self.worker_processes, "stop_workers() first"
        for n in range(self.workers):
            worker = SegbaseProcess(self.settings, "worker", "--concurrency", str(self.worker_concurrency),
                                    name=f"worker{n + 1}", extra_env=extra_env).start()
            self.processes.append(worker)
            self.worker_processes.append(worker)
        for worker in self.worker_processes:
            wait_for(lambda w=worker: " ready." in w.log_text() or not w.alive(), 90, message="worker ready")
            assert worker.alive(), worker.log_text()

    def stop_workers(self) -> None:
        """SIGTERM every worker process (warm shutdown: running tasks finish) and wait for them to exit."""
        for worker in self.worker_processes:
            worker.signal(signal.SIGTERM)
        for worker in self.worker_processes:
            worker.stop(timeout=30)
            self.processes.remove(worker)
        self.worker_processes.clear()

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    @property
    def owner_url(self) -> str:
        assert self.settings is not None
        return libpq_url(self.settings.database_url)

    def owner(self) -> psycopg.Connection:
        return psycopg.connect(self.owner_url, autocommit=True)

    def anon_key(self) -> str:
        return api_key(self.settings, "anon")

    def service_key(self) -> str:
        return api_key(self.settings, "service_role")

    def relay_process(self) -> SegbaseProcess:
        return next(p for p in self.processes if p.command == "relay")

    def api_worker_pids(self) -> list[int]:
        """The gunicorn worker processes (the ones holding sockets), below the `segbase api` process group."""
        assert self.api is not None
        pids = descendants(self.api.pid)
        return [pid for pid in pids if not children(pid)] or [self.api.pid]

    def celery_pids(self) -> list[int]:
        pids = []
        for worker in self.worker_processes:
            pids += [worker.pid, *descendants(worker.pid)]
        return pids

    def bulk_users(self, count: int, *, credits: int, tokens: bool = True) -> list[BenchUser]:
        """`count` users with profiles and live sessions, inserted in SQL as the owner (the sign-up trigger makes
        each profile), and access tokens from the one minter. Much faster than signing up `count` users."""
        tag = uuid.uuid4().hex[:8]
        now = datetime.now(timezone.utc)
        with self.owner() as conn:
            rows = conn.execute(
                "insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at, "
                "  raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous) "
                "select gen_random_uuid(), 'authenticated', 'authenticated', 'bench-' || g || '-' || %s "
                "       || '@example.com', '', now(), '{\"provider\":\"email\",\"providers\":[\"email\"]}', '{}', "
                "       now(), now(), false from generate_series(1, %s) g returning id::text, email",
                (tag, count)).fetchall()
            conn.execute("update public.users_profile set credits = %s where id = any(%s::uuid[])",
                         (credits, [r[0] for r in rows]))
            users = []
            sessions = []
            for user_id, email in rows:
                session_id = str(uuid.uuid4())
                sessions.append((session_id, user_id, now, now))
                token = mint_access_token(self.settings, user={"id": user_id, "email": email},
                                          session_id=session_id).token if tokens else ""
                users.append(BenchUser(user_id, email, token))
            with conn.cursor() as cur:
                cur.executemany("insert into auth.sessions (id, user_id, created_at, updated_at, aal) "
                                "values (%s, %s, %s, %s, 'aal1')", sessions)
        return users

    def pending_results(self, users: list[BenchUser], per_user: int) -> dict[str, list[str]]:
        """`per_user` pending results for each user, inserted in one statement with every trigger on (the
        reservation trigger prices them; the outbox trigger captures the INSERTs)."""
        with self.owner() as conn:
            rows = conn.execute(
                "insert into public.segmentation_results (user_id, source_image_url, text_prompt) "
                "select u, 'https://img.example/in.png', 'bench' from unnest(%s::uuid[]) u, "
                "generate_series(1, %s) g returning user_id::text, id::text",
                ([u.id for u in users], per_user)).fetchall()
        out: dict[str, list[str]] = {u.id: [] for u in users}
        for user_id, result_id in rows:
            out[user_id].append(result_id)
        return out

    def wait_outbox_drained(self, timeout: float = 300) -> None:
        """Wait until the relay has published every outbox row (so set-up traffic does not leak into a
        measurement)."""
        if not self.relay:
            return
        with self.owner() as conn:
            wait_for(lambda: conn.execute("select count(*) = 0 from internal.realtime_outbox "
                                          "where sent_at is null").fetchone()[0], timeout, 0.2,
                     message="outbox drained")

    def wait_inbox_drained(self, timeout: float = 900) -> None:
        """Wait until the workers have finished every inbox event (a backlog must not leak into the next
        measurement)."""
        with self.owner() as conn:
            wait_for(lambda: conn.execute("select not exists (select 1 from internal.webhook_inbox "
                                          "where state = 'received')").fetchone()[0], timeout, 0.5,
                     message="inbox drained")

    def versions(self) -> dict[str, str]:
        with self.owner() as conn:
            pg = conn.execute("show server_version").fetchone()[0]
            sync = conn.execute("show synchronous_commit").fetchone()[0]
            fsync = conn.execute("show fsync").fetchone()[0]
            max_conn = conn.execute("show max_connections").fetchone()[0]
            shared = conn.execute("show shared_buffers").fetchone()[0]
        info = redis.Redis.from_url(self.settings.redis_url).info("server")
        return {"postgresql": pg, "synchronous_commit": sync, "fsync": fsync, "max_connections": max_conn,
                "shared_buffers": shared, "redis": info.get("redis_version", "?")}

    def stop(self) -> None:
        for process in self.processes:
            process.signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.stop(timeout=20)
            except (OSError, subprocess.SubprocessError):
                pass
        self.processes.clear()
        if self.database:
            drop_database(self.database)
            self.database = ""
        if self.settings is not None:
            _flush_namespace(self.settings)


def _flush_namespace(settings: Settings) -> None:
    """Delete the run's Redis keys (its queue and kombu bookkeeping), nothing else in the shared database."""
    client = redis.Redis.from_url(settings.redis_url)
    prefix = settings.redis_key("")
    for key in client.scan_iter(match=f"*{prefix}*", count=1000):
        client.delete(key)
    client.close()


def pretty(value) -> str:
    return json.dumps(value, indent=2, default=str)


def now_s() -> float:
    return time.time()


def environ_without_segbase() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SEGBASE_", "PYTEST_"))}
