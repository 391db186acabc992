"""Ends channels whose token expired or whose session was revoked (logout, refresh-token reuse), in a background
greenlet: expiry every SWEEP_INTERVAL_SECONDS, sessions every SESSION_CHECK_SECONDS (one query for all of them)."""
from __future__ import annotations

import logging
import time
from collections import defaultdict

from sqlalchemy import Engine

from api.identity import sessions_alive
from api.realtime.channels import Channel
from api.realtime.registry import ChannelRegistry

log = logging.getLogger("segbase.realtime")

SWEEP_INTERVAL_SECONDS = 1.0
SESSION_CHECK_SECONDS = 3.0


class Sweeper:
    def __init__(self, engine: Engine, registry: ChannelRegistry) -> None:
        self.engine = engine
        self.registry = registry

    def run_forever(self) -> None:
        last_session_check = 0.0
        while True:
            time.sleep(SWEEP_INTERVAL_SECONDS)
            check_sessions = time.monotonic() - last_session_check >= SESSION_CHECK_SECONDS
            try:
                self.sweep(check_sessions=check_sessions)
            except Exception:
                log.exception("realtime sweep failed")
            else:
                if check_sessions:
                    last_session_check = time.monotonic()

    def sweep(self, *, check_sessions: bool) -> None:
        now = time.time()
        sessions: dict[str, list[Channel]] = defaultdict(list)
        for channel in self.registry.channels():
            if channel.expires_at is not None and channel.expires_at <= now:
                ago = int(now - channel.expires_at)
                channel.subscriber.end_channel(channel, f"Token has expired {ago} seconds ago")
            elif channel.session_id:
                sessions[channel.session_id].append(channel)
        if not check_sessions:
            return
        alive = sessions_alive(self.engine, list(sessions))
        for session_id, members in sessions.items():
            if session_id not in alive:
                for channel in members:
                    channel.subscriber.end_channel(channel, "Token has been revoked: the session ended")
