"""Group commit for process-webhook: the inbox rows of concurrent requests in one transaction, their ids in one
Celery message.

Each request hands its validated event to the API process's `InboxWriter` and waits; one writer loop takes every
event waiting (up to WEBHOOK_GROUP_COMMIT_MAX_EVENTS, after waiting WEBHOOK_GROUP_COMMIT_WINDOW_MS for more when the
group is not full), stores them with one INSERT in one transaction and wakes each request with its own answer only
after the COMMIT returned — so a 202 still means durable. While one group commits, the next one gathers: under load
the groups grow by themselves, and one commit (one WAL flush) and one broker message serve many requests.

A group that fails as a whole for a reason other than an unreachable database (which every request of the group
answers with 503) is stored again one event per transaction, so one bad event cannot fail the others. The new ids
are published to Celery by a second loop after the requests were answered: a slow or unreachable Redis delays no
answer (the sweeper re-queues what was never published, as before).

The loops are threads of the serving process (greenlets under gunicorn's gevent workers, which patch `threading`).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from celery import Celery
from sqlalchemy import Engine

from broker.tasks import enqueue_webhook_events
from db.errors import CONNECTION_ERRORS
from db.pipeline import InboxEvent, StoredEvent, store_inbox_events
from db.uow import Caller, unit_of_work
from observability.metrics import WEBHOOK_GROUP_SIZE

log = logging.getLogger("segbase.webhook")

# Ids waiting to be published beyond this are dropped with a warning: they are durable, and the sweeper queues them.
MAX_UNPUBLISHED_IDS = 100_000


@dataclass(eq=False)
class _Waiter:
    event: InboxEvent
    done: threading.Event = field(default_factory=threading.Event)
    stored: StoredEvent | None = None
    error: BaseException | None = None


class InboxWriter:
    """`store(event)` from any number of request threads/greenlets; see the module docstring."""

    def __init__(self, engine: Engine, celery: Celery, *, max_events: int, window_seconds: float,
                 message_size: int) -> None:
        self.engine = engine
        self.celery = celery
        self.max_events = max(1, max_events)
        self.window_seconds = max(0.0, window_seconds)
        self.message_size = message_size
        self._pending: list[_Waiter] = []
        self._arrived = threading.Condition()
        self._unpublished: list[str] = []
        self._to_publish = threading.Condition()
        for target, name in ((self._write_forever, "inbox-writer"), (self._publish_forever, "inbox-publisher")):
            threading.Thread(target=target, name=name, daemon=True).start()

    def store(self, event: InboxEvent) -> StoredEvent:
        """Store `event` with the group it joins; return once that group's transaction committed."""
        waiter = _Waiter(event)
        with self._arrived:
            self._pending.append(waiter)
            self._arrived.notify()
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.stored is not None
        return waiter.stored

    # --- the writer loop ----------------------------------------------------------------------------------------

    def _next_group(self) -> list[_Waiter]:
        with self._arrived:
            while not self._pending:
                self._arrived.wait()
            if self.window_seconds and len(self._pending) < self.max_events:
                deadline = time.monotonic() + self.window_seconds
                while len(self._pending) < self.max_events:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.wait(left)
            group, self._pending = self._pending[:self.max_events], self._pending[self.max_events:]
            return group

    def _write_forever(self) -> None:
        while True:
            group = self._next_group()
            try:
                new_ids = self._write(group)
            except BaseException as exc:  # noqa: BLE001 — never leave a request waiting, whatever happened
                log.exception("inbox writer failed")
                for waiter in group:
                    if not waiter.done.is_set():
                        waiter.error = exc
                        waiter.done.set()
                continue
            if new_ids:
                self._queue_for_publishing(new_ids)

    def _write(self, group: list[_Waiter]) -> list[str]:
        """Commit the group (or, failing that, each event alone), wake every request, return the new ids."""
        WEBHOOK_GROUP_SIZE.observe(len(group))
        try:
            with unit_of_work(self.engine, Caller.service()) as uow:
                stored = store_inbox_events(uow=uow, events=[waiter.event for waiter in group])
        except CONNECTION_ERRORS as exc:  # the database is unreachable: every request answers 503
            return self._answer(group, [exc] * len(group))
        except Exception as exc:
            if len(group) == 1:
                return self._answer(group, [exc])
            log.warning("inbox group of %d failed as a whole (%s); storing its events one by one", len(group),
                        type(exc).__name__)
            return self._answer(group, [self._store_alone(waiter.event) for waiter in group])
        return self._answer(group, stored)

    def _store_alone(self, event: InboxEvent) -> StoredEvent | BaseException:
        try:
            with unit_of_work(self.engine, Caller.service()) as uow:
                return store_inbox_events(uow=uow, events=[event])[0]
        except Exception as exc:  # noqa: BLE001 — this request's own error, raised in its own view
            return exc

    @staticmethod
    def _answer(group: list[_Waiter], answers: list[StoredEvent | BaseException]) -> list[str]:
        new_ids = []
        for waiter, answer in zip(group, answers, strict=True):
            if isinstance(answer, BaseException):
                waiter.error = answer
            else:
                waiter.stored = answer
                if not answer.duplicate:
                    new_ids.append(answer.event_id)
            waiter.done.set()
        return new_ids

    # --- the publisher loop -------------------------------------------------------------------------------------

    def _queue_for_publishing(self, event_ids: list[str]) -> None:
        with self._to_publish:
            self._unpublished.extend(event_ids)
            overflow = len(self._unpublished) - MAX_UNPUBLISHED_IDS
            if overflow > 0:
                del self._unpublished[:overflow]
                log.warning("%d stored webhook events not queued (the broker is not keeping up); the inbox sweeper "
                            "will queue them", overflow)
            self._to_publish.notify()

    def _publish_forever(self) -> None:
        while True:
            with self._to_publish:
                while not self._unpublished:
                    self._to_publish.wait()
                event_ids, self._unpublished = self._unpublished, []
            try:
                enqueue_webhook_events(self.celery, event_ids, batch_size=self.message_size)
            except Exception as exc:  # noqa: BLE001 — the events are durable; the sweeper queues them later
                log.warning("%d webhook events stored but not queued (%s: %s); the inbox sweeper will queue them",
                            len(event_ids), type(exc).__name__, exc)
