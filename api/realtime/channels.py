"""A joined channel, and the small interface the hub needs from whatever holds channels (a socket's connection, or
a test's recorder): push a frame, end a channel, error a channel, close the socket."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Protocol

from api.realtime.bindings import Binding
from db.uow import Caller


class Subscriber(Protocol):
    vsn: str

    def push(self, frame: str | bytes) -> bool:
        """Queue a frame without blocking; False when it was not queued (the socket is closing)."""

    def end_channel(self, channel: Channel, reason: str) -> None:
        """End one channel with a system error and phx_close (its token expired or was revoked)."""

    def channel_errored(self, channel: Channel) -> None:
        """Send phx_error on one channel, so its client rejoins."""

    def abort(self, reason: str, code: int) -> None:
        """Close the whole socket, telling the client why."""


_SERIALS = itertools.count(1)


@dataclass(eq=False)
class Channel:
    """One joined topic on one socket."""

    subscriber: Subscriber
    topic: str
    join_ref: str | None
    bindings: list[Binding]
    caller: Caller
    expires_at: float | None
    session_id: str | None = None
    delivered: int = field(default=0)
    private: bool = False
    broadcast_self: bool = False
    broadcast_ack: bool = False
    presence_enabled: bool = False
    presence_key: str = ""
    # Private channels: the extensions (`broadcast`, `presence`) RLS on realtime.messages lets this caller read
    # and write, evaluated at join and on each access_token (public channels: both, for everyone).
    readable: frozenset[str] = frozenset({"broadcast", "presence"})
    writable: frozenset[str] = frozenset({"broadcast", "presence"})
    # Unique in this process: names the sending channel in a broadcast it must not receive (self: false).
    serial: int = field(default_factory=lambda: next(_SERIALS))
    # While a join replays (Broadcast Replay, postgres_changes recovery) live frames wait here, so replayed ones
    # arrive first; `replayed` names what was replayed, so its live copy is not sent twice.
    held: list[tuple[object, str | bytes]] | None = None
    replayed: set[object] = field(default_factory=set)

    def offer(self, frame: str | bytes, key: object = None) -> bool:
        """Deliver a live frame (`key` identifies a change or database broadcast): held during a replay, skipped
        when that message was replayed already."""
        if self.held is not None:
            self.held.append((key, frame))
            return True
        if self.replayed and key is not None and key in self.replayed:
            return False
        return self.subscriber.push(frame)

    def release(self) -> None:
        """End the replay: send the live frames that arrived meanwhile, minus those already replayed."""
        held, self.held = self.held or [], None
        for key, frame in held:
            if key is None or key not in self.replayed:
                self.subscriber.push(frame)

    @property
    def sub_topic(self) -> str:
        return self.topic[len("realtime:"):] if self.topic.startswith("realtime:") else self.topic

    @property
    def owner(self) -> str | None:
        return self.caller.user_id
