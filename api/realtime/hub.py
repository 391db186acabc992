"""One API process's realtime state, put together: the registry of its sockets and channels, the publication's
catalog, the Redis listener, the sweeper, and the fan-out of each change the listener receives.

Created lazily per process (after gunicorn forked and gevent patched `threading`, so the listener and the sweeper
are greenlets) and started on the first join.
"""
from __future__ import annotations

import logging
import threading
import uuid

import redis
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine

from api.realtime import bindings, broadcast, fanout, presence, protocol
from api.realtime.bindings import Binding
from api.realtime.channels import Channel
from api.realtime.limits import SocketCounts
from api.realtime.listener import ChangeListener
from api.realtime.registry import ChannelRegistry
from api.realtime.sweeper import Sweeper
from db import realtime as realtime_db
from db.publication import PublicationCatalog
from db.uow import Caller
from broker.channels import changes_channel
from schemas.realtime import BroadcastEvent, ChangeEvent, PresenceDiff
from schemas.settings import Settings

log = logging.getLogger("segbase.realtime")

SUBSCRIBE_WAIT_SECONDS = 5.0


class Hub:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = ChannelRegistry()
        self.counts = SocketCounts(settings)
        self.catalog = PublicationCatalog(engine)
        self.listener = ChangeListener(settings, self.dispatch, self._resync_all)
        self.sweeper = Sweeper(engine, self.registry)
        self._lock = threading.Lock()
        self._started = False
        # Names this process in the messages it publishes (a broadcast its sender must not receive).
        self.process_id = uuid.uuid4().hex
        self._redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        self._bus = changes_channel(settings)
        self.presence = presence.PresenceStore(settings, self.process_id, self.registry, self.publish)

    # --- channels (the registry's, for the socket and the tests) ------------------------------------------
    def register(self, channel: Channel) -> None:
        self.registry.register(channel)

    def unregister(self, channel: Channel) -> None:
        self.registry.unregister(channel)

    def channels(self) -> list[Channel]:
        return self.registry.channels()

    def published_tables(self) -> dict[str, dict[str, dict[str, str]]]:
        """{schema: {table: {column: type}}} for the supabase_realtime publication, cached briefly."""
        return self.catalog.column_types()

    def parse_bindings(self, config: object) -> list[Binding]:
        """A join's `postgres_changes`, checked against the publication; a table published since the catalog
        was read is found by one re-read (rate-limited), so `alter publication ... add table` serves at once."""
        try:
            return bindings.parse_bindings(config, self.catalog.column_types(), self.catalog.unserved())
        except bindings.UnknownTableError:
            if not self.catalog.reload_after_miss():
                raise
            return bindings.parse_bindings(config, self.catalog.column_types(), self.catalog.unserved())

    # --- background greenlets ---------------------------------------------------------------------------
    def ensure_started(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        self.listener.start()
        threading.Thread(target=self.sweeper.run_forever, name="realtime-sweeper", daemon=True).start()
        threading.Thread(target=self.presence.run_forever, name="realtime-presence", daemon=True).start()

    def wait_subscribed(self) -> bool:
        self.ensure_started()
        return self.listener.subscribed.wait(SUBSCRIBE_WAIT_SECONDS)

    def _resync_all(self) -> None:
        """Events published while unsubscribed are gone (pub/sub is at most once): error every channel so the
        clients rejoin, and re-query on SUBSCRIBED as supabase-flutter's stream does."""
        for channel in self.registry.channels():
            self.registry.unregister(channel)
            channel.subscriber.channel_errored(channel)

    # --- fan-out ----------------------------------------------------------------------------------------
    def dispatch(self, raw: bytes | str) -> int:
        """Deliver one message of the Redis channel (a change or a broadcast from the relay, a broadcast or a
        presence diff from an API process) to this process's matching channels; returns frames queued."""
        head = raw[:24] if isinstance(raw, bytes) else raw[:24].encode()
        try:
            if head.startswith(b'{"kind":"broadcast"'):
                return broadcast.deliver(BroadcastEvent.model_validate_json(raw), self.registry, self.process_id)
            if head.startswith(b'{"kind":"presence_diff"'):
                return presence.deliver(PresenceDiff.model_validate_json(raw), self.registry)
            change = ChangeEvent.model_validate_json(raw)
        except ValidationError:
            log.error("dropping a malformed realtime message")
            return 0
        return fanout.deliver(change, self.registry, self.visible_to)

    def publish(self, message: BaseModel) -> None:
        """Send a message to every API process (this one included) through Redis; raises when Redis is down."""
        self._redis.publish(self._bus, message.model_dump_json())

    def visible_to(self, change: ChangeEvent, callers: list[Caller]) -> set[int]:
        return realtime_db.visible_to(self.engine, change.schema_name, change.table, change.record or {}, callers)

    # --- shutdown ---------------------------------------------------------------------------------------
    def close_all(self, reason: str, code: int = protocol.CLOSE_GOING_AWAY) -> int:
        """Close every socket of this process with a close frame (default 1001 going away, so clients reconnect
        elsewhere); returns how many. One broken socket never keeps the others open."""
        sockets = self.registry.sockets()
        for socket in sockets:
            try:
                socket.abort(reason, code)
            except Exception:
                log.exception("closing a realtime socket failed")
        return len(sockets)
