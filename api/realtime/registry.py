"""This process's sockets and joined channels, indexed the way the fan-out looks them up: by owner, plus every
service_role channel (routing by owner: the capture trigger records the user whose RLS lets them SELECT the row).

Under gunicorn's gevent worker `threading` is monkey-patched; the lock only matters for plain threads (tests)."""
from __future__ import annotations

import threading
from collections import defaultdict

from api.realtime.channels import Channel, Subscriber


class ChannelRegistry:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_owner: dict[str, set[Channel]] = defaultdict(set)
        self._service: set[Channel] = set()
        self._channels: set[Channel] = set()
        self._by_table: dict[tuple[str, str], set[Channel]] = defaultdict(set)
        self._by_topic: dict[tuple[str, bool], set[Channel]] = defaultdict(set)  # (sub-topic, private)
        self._sockets: set[Subscriber] = set()

    # --- sockets ----------------------------------------------------------------------------------------
    def add_socket(self, socket: Subscriber) -> None:
        with self._lock:
            self._sockets.add(socket)

    def remove_socket(self, socket: Subscriber) -> None:
        with self._lock:
            self._sockets.discard(socket)

    def sockets(self) -> list[Subscriber]:
        with self._lock:
            return list(self._sockets)

    # --- channels ---------------------------------------------------------------------------------------
    def register(self, channel: Channel) -> None:
        with self._lock:
            self._channels.add(channel)
            self._by_topic[(channel.sub_topic, channel.private)].add(channel)
            for key in _tables(channel):
                self._by_table[key].add(channel)
            if channel.caller.role == "service_role":
                self._service.add(channel)
            elif channel.owner:
                self._by_owner[channel.owner].add(channel)

    def unregister(self, channel: Channel) -> None:
        with self._lock:
            self._channels.discard(channel)
            members = self._by_topic.get((channel.sub_topic, channel.private))
            if members is not None:
                members.discard(channel)
                if not members:
                    del self._by_topic[(channel.sub_topic, channel.private)]
            for key in _tables(channel):
                members = self._by_table.get(key)
                if members is not None:
                    members.discard(channel)
                    if not members:
                        del self._by_table[key]
            self._service.discard(channel)
            if channel.owner and channel.owner in self._by_owner:
                self._by_owner[channel.owner].discard(channel)
                if not self._by_owner[channel.owner]:
                    del self._by_owner[channel.owner]

    def channels(self) -> list[Channel]:
        with self._lock:
            return list(self._channels)

    def topic_channels(self, sub_topic: str, private: bool) -> list[Channel]:
        """The channels joined to a topic (public and private channels of one name are separate, as on Supabase)."""
        with self._lock:
            return list(self._by_topic.get((sub_topic, private), ()))

    def topics(self) -> list[tuple[str, bool]]:
        with self._lock:
            return list(self._by_topic)

    def table_channels(self, schema: str, table: str) -> list[Channel]:
        """Every channel with a binding on `schema.table`, whoever it acts as (RLS decides who receives)."""
        with self._lock:
            return list(self._by_table.get((schema, table), ()))

    def recipients(self, owner: str | None) -> list[Channel]:
        """The channels allowed to see a row owned by `owner`: the owner's and service_role's."""
        with self._lock:
            found = list(self._service)
            if owner:
                found.extend(self._by_owner.get(owner, ()))
            return found


def _tables(channel: Channel) -> set[tuple[str, str]]:
    return {(binding.schema, table) for binding in channel.bindings for table in binding.tables}
