"""The relay under faults, on a database of this module's own (the session relay keeps its lock elsewhere):
kill -9 mid-burst and restart loses no committed outbox event (frames may repeat); a standby takes over."""
from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis
from sqlalchemy import exc as sa_exc

from broker.channels import changes_channel
from db.urls import libpq_url
from tests.support.database import create_database, drop_database, migrate_serialised
from tests.support.factories import create_user
from tests.support.processes import SegbaseProcess, wait_for
from tests.support.realtime import wait_relay_active
from workers.relay import is_retryable

pytestmark = [pytest.mark.fault, pytest.mark.xdist_group("serial")]


@pytest.fixture(scope="module")
def fault_db(settings, run_id) -> Iterator:
    name = f"segbase_t_{run_id}_relay"
    own = settings.model_copy(update={"database_url": create_database(name),
                                      "instance_id": f"{settings.instance_id}rf"})
    try:
        migrate_serialised(own)
        yield own
    finally:
        drop_database(name)


class Listener:
    """Every outbox id published on the deployment's channel, repeats included."""

    def __init__(self, settings) -> None:
        self.pubsub = redis.Redis.from_url(settings.redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(changes_channel(settings))
        self.ids: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message:
                self.ids.append(json.loads(message["data"])["id"])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.pubsub.close()


def test_relay_kill_9_and_restart_loses_no_committed_event(fault_db):
    settings = fault_db
    user = create_user(settings, credits=1000)
    listener = Listener(settings)
    first = SegbaseProcess(settings, "relay", name="relay-a").start()
    standby = None
    restarted = None
    try:
        wait_relay_active(first)
        standby = SegbaseProcess(settings, "relay", name="relay-b").start()
        wait_for(lambda: "relay standby" in standby.log_text(), 30, message="the second relay to wait as standby")
        written = threading.Event()

        def write() -> None:
            with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
                for _ in range(400):
                    conn.execute("insert into public.segmentation_results (id, user_id, source_image_url) "
                                 "values (%s, %s, 'https://example.com/a.png')", (str(uuid.uuid4()), user.id))
            written.set()

        writer = threading.Thread(target=write)
        writer.start()
        wait_for(lambda: len(listener.ids) >= 50, 30, message="the burst to be under way")
        first.kill()  # kill -9 mid-burst
        wait_relay_active(standby)  # the standby takes the lock once the dead relay's connection is gone
        restarted = SegbaseProcess(settings, "relay", name="relay-a-restarted").start()
        writer.join(60)
        assert written.is_set()
        with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
            wait_for(lambda: conn.execute("select count(*) = 0 from internal.realtime_outbox where sent_at is null")
                     .fetchone()[0], 60, message="every outbox row sent")
            committed = {row[0] for row in conn.execute("select id from internal.realtime_outbox")}
        wait_for(lambda: committed <= set(listener.ids), 10, message="every committed event on Redis")
        assert len(committed) >= 400
        assert "relay standby" in restarted.log_text() or "relay active" not in restarted.log_text()
    finally:
        listener.close()
        for process in (first, standby, restarted):
            if process is not None:
                process.stop()


def test_relay_stops_on_a_programming_error_instead_of_retrying(settings, run_id) -> None:
    """A relay pointed at a database without the outbox table (a programming error, not an outage) exits with
    the error instead of retrying forever; outages (lost connection, Redis down) are still retried."""
    name = f"segbase_t_{run_id}_norelay"
    own = settings.model_copy(update={"database_url": create_database(name),
                                      "instance_id": f"{settings.instance_id}nr"})
    relay = SegbaseProcess(own, "relay", name="relay-no-outbox")
    try:
        relay.start()
        wait_for(lambda: not relay.alive(), 60, message="the relay to exit")
        assert relay.proc is not None and relay.proc.returncode != 0
        log = relay.log_text()
        assert "UndefinedTable" in log and "retrying" not in log
    finally:
        relay.stop()
        drop_database(name)


def test_relay_retries_outages_only() -> None:
    def wrapped(sqlstate: str) -> sa_exc.DBAPIError:
        return sa_exc.DBAPIError("select 1", {}, psycopg.errors.lookup(sqlstate)("boom"))

    assert is_retryable(psycopg.OperationalError("server closed the connection"))
    assert is_retryable(redis.ConnectionError("redis is down"))
    assert is_retryable(wrapped("57P01"))  # admin shutdown
    assert not is_retryable(wrapped("42P01"))  # undefined table: a programming error
    assert not is_retryable(wrapped("42501"))  # insufficient privilege
