"""Graceful shutdown and scaling with real processes, on a database of this module's own (their hundreds of
results stay out of the session database other tests list) and an INSTANCE_ID per test (its own Celery queue
and pub/sub channel; Redis is never flushed here), the inbox sweeper off so Celery alone must deliver.

* SIGTERM to an API process, a worker and the relay, each in the middle of a webhook burst (sent to the main
  process, as `docker stop` does): every event acknowledged is applied once, every result charged once, every
  realtime event published exactly once, and the WebSocket on the stopped API gets a 1001 close frame.
* 3 worker processes + 2 API processes through a burst in which every event is sent to both APIs at once.
"""
from __future__ import annotations

import json
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
import redis
from websockets.exceptions import ConnectionClosed

from db.cleanup import cleanup_lock
from db.engine import create_app_engine
from db.urls import libpq_url
from tests.support.database import create_database, drop_database, migrate_serialised
from tests.support.factories import create_user
from tests.support.metrics import metric
from tests.support.pipeline import (
    event_body,
    figures,
    post_event,
    start_worker,
    submit_results,
    wait_until_final,
)
from tests.support.processes import (
    LOG_DIR,
    ApiProcess,
    SegbaseProcess,
    free_port,
    wait_for,
)
from tests.support.realtime import PhoenixSocket, wait_relay_active
from workers.maintenance import run_cleanup


@pytest.fixture(scope="module")
def ops_db(settings, run_id) -> Iterator[tuple]:
    """(settings, engine, owner connection) of a database created for this module."""
    name = f"segbase_t_{run_id}_ops"
    own = settings.model_copy(update={"database_url": create_database(name)})
    try:
        migrate_serialised(own)
        engine = create_app_engine(own, pool_size=2, application_name="segbase-tests-ops")
        with psycopg.connect(libpq_url(own.database_url), autocommit=True) as conn:
            yield own, engine, conn
        engine.dispose()
    finally:
        drop_database(name)


def own_settings(settings, suffix: str, **overrides):
    return settings.model_copy(update={"instance_id": f"{settings.instance_id}{suffix}",
                                       "inbox_sweep_enabled": False, **overrides})


def terminate(process: SegbaseProcess) -> None:
    """SIGTERM to the main process only (gunicorn's arbiter, Celery's main process, the relay)."""
    os.kill(process.pid, signal.SIGTERM)


class Sender:
    """Posts each event until some API acknowledges it (202, or 200 duplicate), switching API on a refused
    connection or a 5xx, as a webhook sender retries. Counts attempts so triggers can fire mid-burst."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.sent = 0
        self.lock = threading.Lock()
        self.acks: Counter[int] = Counter()
        self.retries = 0

    def send(self, index_and_body: tuple[int, dict]) -> int:
        index, body = index_and_body
        with httpx.Client(timeout=30) as client:
            for attempt in range(200):
                url = self.urls[(index + attempt) % len(self.urls)]
                try:
                    response = post_event(client, url, body)
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code in (200, 202):
                    with self.lock:
                        self.sent += 1
                        self.acks[response.status_code] += 1
                    return response.status_code
                with self.lock:
                    self.retries += 1
                threading.Event().wait(0.05)
        raise AssertionError(f"event {index} was never acknowledged")


def outbox_ids(conn, result_ids: list[str]) -> set[int]:
    return {row[0] for row in conn.execute(
        "select id from internal.realtime_outbox where table_name = 'segmentation_results' "
        "and pk ->> 'id' = any(%s)", (result_ids,))}


@pytest.mark.fault
@pytest.mark.xdist_group("serial")
def test_sigterm_mid_burst_to_api_worker_and_relay_loses_and_doubles_nothing(ops_db, service_key):
    settings, engine, owner_conn = ops_db
    own = own_settings(settings, "gs")
    api_a, api_b = ApiProcess(own).start(), ApiProcess(own).start()
    workers = [start_worker(own, "gs-worker-1")]
    relays = [SegbaseProcess(own, "relay", name="gs-relay-1").start()]
    received: list[dict] = []
    subscriber = redis.Redis.from_url(own.redis_url).pubsub(ignore_subscribe_messages=True)
    socket = None
    listener = None
    stop_listening = threading.Event()
    try:
        wait_relay_active(relays[0])
        subscriber.subscribe(own.redis_key("realtime", "changes"))

        def listen() -> None:
            while not stop_listening.is_set():
                message = subscriber.get_message(timeout=0.2)
                if message:
                    received.append(json.loads(message["data"]))
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()

        socket = PhoenixSocket(api_a.url, service_key)
        joined = socket.join("realtime:ops-shutdown", [{"event": "*", "schema": "public",
                                                        "table": "segmentation_results"}], service_key)
        assert joined["payload"]["status"] == "ok", joined
        closed: list[ConnectionClosed] = []

        def read_socket() -> None:
            try:
                while True:
                    socket.ws.recv()
            except ConnectionClosed as exc:
                closed.append(exc)
        reader = threading.Thread(target=read_socket, daemon=True)
        reader.start()

        users = [create_user(settings, credits=40) for _ in range(5)]
        results = [rid for user in users for rid in submit_results(engine, user, 40)]
        events = [event_body(rid) for rid in results]
        random.Random(7).shuffle(events)
        sender = Sender([api_a.url, api_b.url])

        def choreography() -> None:
            wait_for(lambda: sender.sent >= 40, timeout=120, message="40 events sent")
            terminate(api_a)
            wait_for(lambda: sender.sent >= 80, timeout=120, message="80 events sent")
            terminate(workers[0])
            workers.append(start_worker(own, "gs-worker-2"))
            wait_for(lambda: sender.sent >= 130, timeout=120, message="130 events sent")
            terminate(relays[0])
            relays.append(SegbaseProcess(own, "relay", name="gs-relay-2").start())
        conductor = threading.Thread(target=choreography)
        conductor.start()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(sender.send, enumerate(events)))
        conductor.join()

        # Each stopped process exited cleanly: gunicorn and the relay with 0, Celery after a warm shutdown.
        assert api_a.proc.wait(timeout=60) == 0, api_a.log_text()
        assert workers[0].proc.wait(timeout=60) == 0, workers[0].log_text()
        assert "warm shutdown" in workers[0].log_text().lower()
        assert relays[0].proc.wait(timeout=60) == 0, relays[0].log_text()
        # The socket on the stopped API was closed with a close frame: 1001 going away, not a cut connection.
        reader.join(30)
        assert closed and closed[0].rcvd is not None and closed[0].rcvd.code == 1001, closed

        # Nothing acknowledged was lost, nothing was doubled.
        assert statuses.count(202) + statuses.count(200) == len(events)
        wait_until_final(owner_conn, results, timeout=120)
        final = figures(owner_conn, results)  # read again: every event is final, so the figures are stable
        assert final.states == {"applied": len(results)}, final
        assert (final.done, final.charges, final.double_charged) == (len(results), len(results), 0)
        balances = dict(owner_conn.execute("select id::text, credits from public.users_profile where id = any(%s)",
                                           ([u.id for u in users],)).fetchall())
        assert set(balances.values()) == {0}

        # Every realtime event of these results was published once: none lost, none repeated across relays.
        wait_relay_active(relays[1])
        expected = outbox_ids(owner_conn, results)
        assert len(expected) == 2 * len(results)  # the INSERT and the UPDATE to done of each result
        wait_for(lambda: not owner_conn.execute(
            "select count(*) from internal.realtime_outbox where id = any(%s) and sent_at is null",
            (list(expected),)).fetchone()[0], timeout=60, message="the relay to send every event")
        wait_for(lambda: expected <= {m["id"] for m in received}, timeout=30, message="every event on Redis")
        published = Counter(m["id"] for m in received if m["id"] in expected)
        assert set(published.values()) == {1}
    finally:
        stop_listening.set()
        if listener is not None:
            listener.join(5)
        if socket is not None:
            socket.close()
        subscriber.close()
        for process in [api_a, api_b, *workers, *relays]:
            process.stop()


@pytest.mark.slow
@pytest.mark.xdist_group("serial")
def test_three_workers_and_two_api_processes_apply_a_doubled_burst_exactly_once(ops_db):
    settings, engine, owner_conn = ops_db
    metrics_port = free_port()
    own = own_settings(settings, "sc", worker_metrics_port=metrics_port)
    apis = [ApiProcess(own).start(), ApiProcess(own).start()]
    workers = []
    try:
        workers.extend(SegbaseProcess(own, "worker", "--concurrency", "1", name=f"sc-worker-{n + 1}").start()
                       for n in range(3))
        for worker in workers:
            wait_for(lambda w=worker: "ready" in w.log_text() or not w.alive(), timeout=60, message="worker start")
        users = [create_user(settings, credits=40) for _ in range(3)]
        results = [rid for user in users for rid in submit_results(engine, user, 40)]
        # Every event goes to both API processes at once: one stores it, the other answers duplicate.
        posts = [(i, event_body(rid)) for rid in results for i in (0, 1)]
        random.Random(11).shuffle(posts)
        with ThreadPoolExecutor(8) as pool:
            statuses = Counter(pool.map(Sender([api.url for api in apis]).send, posts))

        wait_until_final(owner_conn, results, timeout=120)
        final = figures(owner_conn, results)
        assert statuses[202] == len(results) and statuses[200] == len(results)
        assert final.events == len(results) and final.states == {"applied": len(results)}
        assert (final.done, final.charges, final.double_charged) == (len(results), len(results), 0)
        credits = {row[0] for row in owner_conn.execute(
            "select credits from public.users_profile where id = any(%s)", ([u.id for u in users],))}
        assert credits == {0}
        # One host, one WORKER_METRICS_PORT: the first worker serves it, the others only warn and keep working.
        assert sum("metrics endpoint not started" in w.log_text() for w in workers) == 2
        assert all(w.alive() for w in workers)

        worker_metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        api_metrics = httpx.get(f"{apis[0].url}/metrics").text
        (LOG_DIR / f"{own.instance_id}-metrics-after-burst.txt").write_text(
            "# API /metrics\n" + api_metrics + "\n# worker :WORKER_METRICS_PORT/metrics\n" + worker_metrics)
        assert 'segbase_http_requests_total{method="POST",route="/functions/v1/process-webhook"' in api_metrics
        assert "segbase_pipeline_probe_up 1.0" in api_metrics
        # The API sends each group of events it committed together as one segbase.apply_webhook_events message.
        assert 'segbase_tasks_total{outcome="success",task="segbase.apply_webhook_events"}' in worker_metrics
    finally:
        for process in [*apis, *workers]:
            process.stop()


def test_cleanup_deletions_reach_subscribers_and_metrics_count_the_frames(ops_db, service_key):
    settings, engine, owner_conn = ops_db
    relay_port = free_port()
    own = own_settings(settings, "wm", relay_metrics_port=relay_port)
    api = ApiProcess(own).start()
    relay = SegbaseProcess(own, "relay", name="wm-relay").start()
    socket = None
    try:
        wait_relay_active(relay)
        socket = PhoenixSocket(api.url, service_key)
        joined = socket.join("realtime:ops-metrics", [{"event": "*", "schema": "public",
                                                       "table": "segmentation_results"}], service_key)
        assert joined["payload"]["status"] == "ok", joined
        user = create_user(settings, credits=5)
        result = owner_conn.execute("insert into public.segmentation_results (user_id, source_image_url) "
                                    "values (%s, 'https://img.example/in.png') returning id::text",
                                    (user.id,)).fetchone()[0]
        socket.wait(lambda m: m["event"] == "postgres_changes"
                    and m["payload"]["data"]["record"]["id"] == result)

        api_metrics = httpx.get(f"{api.url}/metrics").text
        assert "segbase_websocket_connections 1.0" in api_metrics
        assert 'segbase_websocket_frames_sent_total{event="INSERT"}' in api_metrics
        # A cleanup's deletions are ordinary DELETEs: the owner's subscribers get them like any other change.
        expired = owner_conn.execute(
            "insert into public.segmentation_results (user_id, source_image_url, status, created_at) "
            "values (%s, 'https://img.example/in.png', 'done', now() - interval '30 days') returning id::text",
            (user.id,)).fetchone()[0]
        with cleanup_lock(engine):
            run_cleanup(engine, batch_size=100, inbox_retention_days=30, outbox_retention_hours=24)
        deleted = socket.wait(lambda m: m["event"] == "postgres_changes"
                              and m["payload"]["data"]["type"] == "DELETE")
        assert deleted["payload"]["data"]["old_record"] == {"id": expired}
        assert 'segbase_websocket_frames_sent_total{event="DELETE"}' in httpx.get(f"{api.url}/metrics").text

        relay_metrics = httpx.get(f"http://127.0.0.1:{relay_port}/metrics").text
        assert metric(relay_metrics, "segbase_outbox_events_published_total") >= 1
    finally:
        if socket is not None:
            socket.close()
        relay.stop()
        api.stop()
