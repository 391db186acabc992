"""The per-process notification listener that wakes long-polling claim-jobs calls.

One LISTEN connection per API process (a greenlet under gunicorn's gevent workers): every NOTIFY on
`segbase_dispatch` (a job enqueued, a lease released, dispatch re-enabled) bumps a generation counter, and a waiting
claim wakes when it changes — or when the next due time it read (a retry, a lease about to expire) arrives. No
claim polls. The listener also bounds how many claims may wait at once (DISPATCH_MAX_WAITERS).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from api.errors import ApiError
from db import dispatch
from db.urls import authenticator_libpq_url
from schemas.settings import Settings

log = logging.getLogger("segbase.dispatch")

LISTEN_RETRY_SECONDS = 1.0


class TooManyWaitersError(ApiError):
    status, code = 429, "too_many_waiters"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class JobSignal:
    """Wakes long-polling claims on NOTIFY segbase_dispatch; counts and bounds them (DISPATCH_MAX_WAITERS)."""

    def __init__(self, settings: Settings) -> None:
        self.conninfo = authenticator_libpq_url(settings)
        self.max_waiters = settings.dispatch_max_waiters
        self.condition = threading.Condition()
        self.generation = 0
        self.waiters = 0
        self.listening = threading.Event()
        self.closed = threading.Event()
        threading.Thread(target=self._listen, name="dispatch-signal", daemon=True).start()

    def close(self) -> None:
        """Stop listening: for an app torn down in-process, e.g. in tests. A NOTIFY wakes the listener to see it."""
        self.closed.set()
        try:
            with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"notify {dispatch.NOTIFY_CHANNEL}")
        except psycopg.Error:
            pass  # the database is gone: so is the listener's connection

    def _bump(self) -> None:
        with self.condition:
            self.generation += 1
            self.condition.notify_all()

    def _listen(self) -> None:
        while not self.closed.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, application_name="segbase-dispatch-signal",
                                     connect_timeout=5) as conn:
                    conn.execute(f"listen {dispatch.NOTIFY_CHANNEL}")
                    self.listening.set()
                    self._bump()  # (re)connected: whatever was notified meanwhile is looked at again
                    # Unbounded: psycopg waits for it cooperatively under gevent (a bounded wait would not).
                    for _ in conn.notifies():
                        if self.closed.is_set():
                            return
                        self._bump()
            except psycopg.Error as exc:
                self.listening.clear()
                if self.closed.is_set():
                    return
                log.warning("dispatch listener lost its connection (%s); reconnecting", type(exc).__name__)
                self.closed.wait(LISTEN_RETRY_SECONDS)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Hold one of the DISPATCH_MAX_WAITERS long-poll slots of this process (429 when none is free)."""
        with self.condition:
            if self.waiters >= self.max_waiters:
                raise TooManyWaitersError(
                    f"this API process already holds {self.max_waiters} waiting claim-jobs calls "
                    "(DISPATCH_MAX_WAITERS); retry, or claim with wait_seconds 0")
            self.waiters += 1
        try:
            yield
        finally:
            with self.condition:
                self.waiters -= 1

    def wait(self, seen: int, timeout: float) -> None:
        """Return when a notification arrived after generation `seen` was read, or after `timeout` seconds."""
        with self.condition:
            self.condition.wait_for(lambda: self.generation != seen, timeout=max(0.0, timeout))
