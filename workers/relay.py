"""`segbase relay`: publishes committed outbox events to Redis pub/sub, in outbox order, at least once (and, with
DISPATCH_MODE=push, runs the dispatch releaser: workers/dispatch.py).

One relay is active per database: it holds a session advisory lock on a dedicated connection (a second relay
waits for that lock as a standby and takes over when the first one's connection ends). The active relay LISTENs
on the capture trigger's channel and reads unsent rows when notified, with a slow fallback poll in case a
notification is lost (e.g. across a reconnect). A batch is published to Redis first and marked sent in the same
transaction afterwards, so a crash in between repeats frames rather than losing them (docs/REALTIME.md).
"""
from __future__ import annotations

import logging
import signal
import threading
import time

import psycopg
import redis

from broker.channels import changes_channel
from db.engine import create_app_engine
from db.errors import is_unavailable
from db.outbox import (
    NOTIFY_CHANNEL,
    RELAY_LOCK_KEY,
    broadcast_event,
    change_event,
    is_broadcast,
    mark_sent,
    prune_messages,
    prune_sent,
    read_unsent,
)
from db.publication import PublicationCatalog
from db.uow import Caller, unit_of_work
from db.urls import authenticator_libpq_url
from observability.metrics import OUTBOX_PUBLISHED
from workers.dispatch import start_releaser
from schemas.settings import Settings

log = logging.getLogger("segbase.relay")

BATCH_SIZE = 500
FALLBACK_POLL_SECONDS = 10.0
STANDBY_RETRY_SECONDS = 1.0
PRUNE_EVERY_SECONDS = 600.0


def is_retryable(exc: BaseException) -> bool:
    """Failures the relay outlives by reconnecting: the database or Redis unavailable for a while."""
    return is_unavailable(exc) or isinstance(exc, (redis.RedisError, OSError))


class Relay:
    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        # Two connections: the publishing transaction, and the catalog's read when its cache expires meanwhile.
        self.engine = create_app_engine(settings, pool_size=2, application_name="segbase-relay")
        self.redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        self.channel = changes_channel(settings)
        self.catalog = PublicationCatalog(self.engine)
        self.published = 0

    def publish_batch(self) -> int:
        """Publish up to BATCH_SIZE unsent rows in id order, then mark them sent; returns how many."""
        with unit_of_work(self.engine, Caller.service()) as uow:
            rows = read_unsent(uow, BATCH_SIZE)
            if not rows:
                return 0
            pipe = self.redis.pipeline(transaction=False)
            for row in rows:
                if is_broadcast(row):
                    pipe.publish(self.channel, broadcast_event(row).to_json())
                    continue
                shape = self.catalog.shape(row.schema_name, row.table_name)
                if shape is None:  # the table left the publication after capture: nobody can be subscribed to it
                    log.info("not publishing outbox row %d: %s.%s is not in the publication", row.id,
                             row.schema_name, row.table_name)
                    continue
                pipe.publish(self.channel, change_event(row, shape).to_json())
            pipe.execute()
            mark_sent(uow, [row.id for row in rows])
        self.published += len(rows)
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    def prune(self) -> None:
        with unit_of_work(self.engine, Caller.service()) as uow:
            removed = prune_sent(uow, self.settings.outbox_retention_hours)
            messages = prune_messages(uow, self.settings.realtime_messages_retention_hours)
        if removed or messages:
            log.info("pruned %d sent outbox rows and %d realtime.messages rows", removed, messages)

    def acquire(self, conn: psycopg.Connection) -> bool:
        """Wait (as a standby) until this process holds the relay lock, or stop is requested."""
        announced = False
        while not self.stop.is_set():
            if conn.execute("select pg_try_advisory_lock(%s)", (RELAY_LOCK_KEY,)).fetchone()[0]:
                return True
            if not announced:
                log.info("relay standby: another relay is active")
                announced = True
            self.stop.wait(STANDBY_RETRY_SECONDS)
        return False

    def serve(self, conn: psycopg.Connection) -> None:
        """The active relay's loop: drain, then sleep until NOTIFY (or the fallback poll), until stopped."""
        conn.execute(f"listen {NOTIFY_CHANNEL}")
        log.info("relay active: publishing to %s", self.channel)
        last_prune = 0.0
        while not self.stop.is_set():
            while self.publish_batch() == BATCH_SIZE and not self.stop.is_set():
                pass
            if time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
                self.prune()
                last_prune = time.monotonic()
            waited = 0.0
            notified = False
            while not notified and waited < FALLBACK_POLL_SECONDS and not self.stop.is_set():
                # Short waits keep SIGTERM responsive; any notification means "read again".
                for _ in conn.notifies(timeout=1.0, stop_after=1):
                    notified = True
                waited += 1.0

    def run(self) -> int:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                with psycopg.connect(authenticator_libpq_url(self.settings), autocommit=True,
                                     application_name="segbase-relay-lock") as conn:
                    if not self.acquire(conn):
                        break
                    backoff = 0.5
                    self.serve(conn)
            except Exception as exc:
                if not is_retryable(exc):
                    raise  # a programming error (say, a missing table) stops the relay loudly instead of looping
                log.warning("relay interrupted (%s); retrying in %.1fs", exc.__class__.__name__, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        self.engine.dispose()
        log.info("relay stopped after publishing %d events", self.published)
        return 0


def run_relay(settings: Settings) -> int:
    """The outbox relay and, with DISPATCH_MODE=push, the dispatch releaser (workers/dispatch.py): both turn
    committed rows into Redis messages, each with its own lock, so one active copy of each runs per database."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    releaser = start_releaser(settings, stop)
    code = Relay(settings, stop).run()
    if releaser is not None:
        releaser.join(timeout=10)
    return code
