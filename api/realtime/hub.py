"""One API process's realtime state: its sockets' channels, its one Redis subscription, and the sweeper.

Routing is by owner: the capture trigger records the user whose RLS lets them SELECT the row, so a change goes to
that user's channels plus every service_role channel, never to anon (tests/realtime/test_routing_rls.py proves
this equals running the SELECT as each user). Under gunicorn's gevent worker `threading` is monkey-patched, so
the subscriber, the sweeper and each socket's writer are greenlets.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
from pydantic import ValidationError
from sqlalchemy import Engine

from api.realtime import protocol
from broker.channels import changes_channel
from db.publication import PublicationCatalog
from db.uow import Caller
from observability.metrics import WS_FRAMES
from schemas.realtime import ChangeEvent
from schemas.settings import Settings

if TYPE_CHECKING:
    from api.realtime.connection import Connection

log = logging.getLogger("segbase.realtime")

SWEEP_INTERVAL_SECONDS = 1.0
SESSION_CHECK_SECONDS = 3.0
SUBSCRIBE_WAIT_SECONDS = 5.0


@dataclass(eq=False)
class Channel:
    """One joined topic on one socket."""

    conn: Connection
    topic: str
    join_ref: str | None
    bindings: list[protocol.Binding]
    caller: Caller
    expires_at: float | None
    session_id: str | None = None
    delivered: int = field(default=0)

    @property
    def owner(self) -> str | None:
        return self.caller.user_id


class Hub:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.channel_name = changes_channel(settings)
        self._lock = threading.RLock()
        self._by_owner: dict[str, set[Channel]] = defaultdict(set)
        self._service: set[Channel] = set()
        self._channels: set[Channel] = set()
        self._started = False
        self.subscribed = threading.Event()
        self.catalog = PublicationCatalog(engine)
        self.events_received = 0
        self.frames_queued = 0

    # --- registry ---------------------------------------------------------------------------------------
    def register(self, channel: Channel) -> None:
        with self._lock:
            self._channels.add(channel)
            if channel.caller.role == "service_role":
                self._service.add(channel)
            elif channel.owner:
                self._by_owner[channel.owner].add(channel)

    def unregister(self, channel: Channel) -> None:
        with self._lock:
            self._channels.discard(channel)
            self._service.discard(channel)
            if channel.owner and channel.owner in self._by_owner:
                self._by_owner[channel.owner].discard(channel)
                if not self._by_owner[channel.owner]:
                    del self._by_owner[channel.owner]

    def channels(self) -> list[Channel]:
        with self._lock:
            return list(self._channels)

    def recipients(self, owner: str | None) -> list[Channel]:
        """The channels allowed to see a row owned by `owner`: the owner's and service_role's."""
        with self._lock:
            found = list(self._service)
            if owner:
                found.extend(self._by_owner.get(owner, ()))
            return found

    # --- catalog ----------------------------------------------------------------------------------------
    def published_tables(self) -> dict[str, dict[str, dict[str, str]]]:
        """{schema: {table: {column: type}}} for the supabase_realtime publication, cached briefly."""
        return self.catalog.column_types()

    # --- background greenlets ---------------------------------------------------------------------------
    def ensure_started(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._subscribe_forever, name="realtime-subscriber", daemon=True).start()
        threading.Thread(target=self._sweep_forever, name="realtime-sweeper", daemon=True).start()

    def wait_subscribed(self) -> bool:
        self.ensure_started()
        return self.subscribed.wait(SUBSCRIBE_WAIT_SECONDS)

    def _subscribe_forever(self) -> None:
        backoff = 0.2
        interrupted = False
        while True:
            client = redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2,
                                          health_check_interval=15)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel_name)
                if interrupted:
                    self._resync_all()
                    interrupted = False
                self.subscribed.set()
                backoff = 0.2
                while True:
                    message = pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        self.dispatch(message["data"])
            except redis.RedisError as exc:
                log.warning("realtime subscription lost (%s); resubscribing", exc.__class__.__name__)
            except Exception:
                log.exception("realtime subscriber failed; resubscribing")
            finally:
                self.subscribed.clear()
                interrupted = True
                try:
                    pubsub.close()
                    client.close()
                except Exception:
                    log.debug("closing the broken subscription failed", exc_info=True)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _resync_all(self) -> None:
        """Events published while unsubscribed are gone (pub/sub is at most once): error every channel so the
        clients rejoin, and re-query on SUBSCRIBED as supabase-flutter's stream does."""
        for channel in self.channels():
            self.unregister(channel)
            channel.conn.channel_errored(channel)

    def _sweep_forever(self) -> None:
        last_session_check = 0.0
        while True:
            time.sleep(SWEEP_INTERVAL_SECONDS)
            try:
                self.sweep(check_sessions=time.monotonic() - last_session_check >= SESSION_CHECK_SECONDS)
            except Exception:
                log.exception("realtime sweep failed")
            else:
                if time.monotonic() - last_session_check >= SESSION_CHECK_SECONDS:
                    last_session_check = time.monotonic()

    def sweep(self, *, check_sessions: bool) -> None:
        """End channels whose token expired or whose session was revoked (logout, refresh-token reuse)."""
        from api.identity import (
            session_is_alive,  # late: identity is heavy at hub import (split pending)
        )

        now = time.time()
        sessions: dict[str, list[Channel]] = defaultdict(list)
        for channel in self.channels():
            if channel.expires_at is not None and channel.expires_at <= now:
                ago = int(now - channel.expires_at)
                channel.conn.end_channel(channel, f"Token has expired {ago} seconds ago")
            elif channel.session_id:
                sessions[channel.session_id].append(channel)
        if not check_sessions:
            return
        for session_id, members in sessions.items():
            if not session_is_alive(self.engine, session_id):
                for channel in members:
                    channel.conn.end_channel(channel, "Token has been revoked: the session ended")

    # --- fan-out ----------------------------------------------------------------------------------------
    def dispatch(self, raw: bytes | str) -> int:
        """Deliver one published change to this process's matching channels; returns frames queued.
        A failure for one subscriber is logged and never stops delivery to the rest."""
        self.events_received += 1
        try:
            change = ChangeEvent.model_validate_json(raw)
        except ValidationError:
            log.error("dropping a malformed realtime message")
            return 0
        types = {column["name"]: column["type"] for column in change.columns}
        serialized: dict[str, str] = {}
        queued = 0
        for channel in self.recipients(change.owner):
            try:
                ids = [b.id for b in channel.bindings if b.matches(change, types)]
                if not ids:
                    continue
                role = channel.caller.role
                data = serialized.get(role)
                if data is None:
                    hidden = [] if role == "service_role" else change.hidden.get(role, [])
                    data = serialized[role] = protocol.change_data(change, hidden)
                if channel.conn.push(protocol.change_frame(channel.conn.vsn, channel.topic, ids, data)):
                    channel.delivered += 1
                    queued += 1
            except Exception:
                log.exception("realtime delivery to one channel failed")
        self.frames_queued += queued
        if queued:
            WS_FRAMES.labels(change.type).inc(queued)
        return queued
