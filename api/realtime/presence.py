"""Presence: who is on a topic, across every API process, kept in Redis with an expiry.

One Redis hash per topic (`<INSTANCE_ID>:realtime:presence:<public|private>:<sub-topic>`) holds one entry per
tracking channel (`<process id>:<channel serial>` → `{key, meta, expires}`); `meta` is what the client tracked
plus its `phx_ref`. Every change is a `schemas.realtime.PresenceDiff` on the Redis channel all API processes
listen to, delivered as `presence_diff` to the topic's members with presence enabled (the tracker included, as
Supabase does); a join with presence enabled first gets `presence_state` (the hash, grouped by key), which the
clients' Phoenix presence needs before it applies any diff.

Each process renews its entries every third of REALTIME_PRESENCE_TTL_SECONDS; an entry past its `expires`
belongs to a process that stopped (crash, kill -9): the first process to delete it (HDEL answers 1 to exactly
one) announces the leave. Shapes as `lib/realtime_web/channels/realtime_channel/presence_handler.ex` in
supabase/realtime and the clients' `RealtimePresence` expect."""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from typing import Any

import redis

from api.realtime import protocol
from api.realtime.channels import Channel
from api.realtime.registry import ChannelRegistry
from observability.metrics import WS_FRAMES
from schemas.realtime import PresenceDiff
from schemas.settings import Settings

log = logging.getLogger("segbase.realtime")

Metas = dict[str, dict[str, list[dict[str, Any]]]]


def new_ref() -> str:
    return secrets.token_urlsafe(9)


class PresenceStore:
    def __init__(self, settings: Settings, process_id: str, registry: ChannelRegistry, publish) -> None:
        self.settings = settings
        self.ttl = settings.realtime_presence_ttl_seconds
        self.process_id = process_id
        self.registry = registry
        self.publish = publish
        self.redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        self._lock = threading.Lock()
        self._tracked: dict[Channel, dict[str, Any]] = {}  # channel → its entry's meta

    def _hash(self, sub_topic: str, private: bool) -> str:
        return self.settings.redis_key("realtime", "presence", "private" if private else "public", sub_topic)

    def _field(self, channel: Channel) -> str:
        return f"{self.process_id}:{channel.serial}"

    def _write(self, channel: Channel, meta: dict[str, Any]) -> None:
        name = self._hash(channel.sub_topic, channel.private)
        entry = json.dumps({"key": channel.presence_key, "meta": meta, "expires": time.time() + self.ttl})
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(name, self._field(channel), entry)
        pipe.expire(name, self.ttl * 2)
        pipe.execute()

    # --- a client's track / untrack --------------------------------------------------------------------
    def track(self, channel: Channel, payload: dict[str, Any]) -> None:
        """Track (or update: a leave and a join of the same key, `phx_ref_prev` naming the old meta)."""
        with self._lock:
            previous = self._tracked.get(channel)
        if previous is not None and {k: v for k, v in previous.items() if k not in ("phx_ref", "phx_ref_prev")} \
                == payload:
            return  # an identical re-track changes nothing, as on Supabase
        meta = {**payload, "phx_ref": new_ref()}
        if previous is not None:
            meta["phx_ref_prev"] = previous["phx_ref"]
        self._write(channel, meta)
        with self._lock:
            self._tracked[channel] = meta
        leaves = {channel.presence_key: {"metas": [previous]}} if previous is not None else {}
        self.publish(PresenceDiff(topic=channel.sub_topic, private=channel.private,
                                  joins={channel.presence_key: {"metas": [meta]}}, leaves=leaves))

    def untrack(self, channel: Channel) -> None:
        """Forget a channel's presence (untrack, leave, socket closed); a leave diff if it had one."""
        with self._lock:
            meta = self._tracked.pop(channel, None)
        if meta is None:
            return
        try:
            removed = self.redis.hdel(self._hash(channel.sub_topic, channel.private), self._field(channel))
            if removed:
                self.publish(PresenceDiff(topic=channel.sub_topic, private=channel.private, joins={},
                                          leaves={channel.presence_key: {"metas": [meta]}}))
        except redis.RedisError as exc:  # the entry expires by itself; the others' sweep announces the leave
            log.warning("presence untrack failed (%s); the entry will expire", exc.__class__.__name__)

    def state(self, sub_topic: str, private: bool) -> Metas:
        """The topic's presences, grouped by key (`presence_state`), without expired entries."""
        now = time.time()
        state: Metas = {}
        for raw in self.redis.hvals(self._hash(sub_topic, private)):
            entry = json.loads(raw)
            if entry["expires"] > now:
                state.setdefault(entry["key"], {"metas": []})["metas"].append(entry["meta"])
        return state

    # --- background: renew ours, retire the dead -------------------------------------------------------
    def run_forever(self) -> None:
        while True:
            time.sleep(self.ttl / 3)
            try:
                self.renew()
                self.retire_expired()
            except Exception:
                log.exception("presence upkeep failed")

    def renew(self) -> None:
        with self._lock:
            tracked = list(self._tracked.items())
        for channel, meta in tracked:
            self._write(channel, meta)

    def retire_expired(self) -> None:
        """Remove entries whose process stopped renewing them, announcing each leave exactly once."""
        now = time.time()
        for sub_topic, private in self.registry.topics():
            name = self._hash(sub_topic, private)
            for field, raw in self.redis.hgetall(name).items():
                entry = json.loads(raw)
                if entry["expires"] <= now and self.redis.hdel(name, field):
                    self.publish(PresenceDiff(topic=sub_topic, private=private, joins={},
                                              leaves={entry["key"]: {"metas": [entry["meta"]]}}))


def deliver(diff: PresenceDiff, registry: ChannelRegistry) -> int:
    """`presence_diff` to every member of the topic here with presence enabled (private: with presence read)."""
    topic = protocol.TOPIC_PREFIX + diff.topic
    payload = {"joins": diff.joins, "leaves": diff.leaves}
    frames: dict[str, str] = {}
    queued = 0
    for channel in registry.topic_channels(diff.topic, diff.private):
        if not channel.presence_enabled or (diff.private and "presence" not in channel.readable):
            continue
        vsn = channel.subscriber.vsn
        frame = frames.get(vsn)
        if frame is None:
            frame = frames[vsn] = protocol.encode(vsn, topic, "presence_diff", payload)
        try:
            if channel.offer(frame):
                queued += 1
        except Exception:
            log.exception("realtime presence diff to one channel failed")
    if queued:
        WS_FRAMES.labels("presence_diff").inc(queued)
    return queued
