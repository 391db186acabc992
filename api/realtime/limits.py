"""What clients may hold on one API worker process, one setting and one check each (docs/REALTIME.md, "Limits").

Counts are per process, like the resources they protect (greenlets, memory, gevent's connection pool): with N
API worker processes behind one address a client can hold up to N times each cap. The refusal reasons are Supabase
Realtime's (its operational error codes), so client code written against Supabase recognises them.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from schemas.settings import Settings

TOO_MANY_CHANNELS = "ChannelRateLimitReached: Too many channels"
TOO_MANY_FROM_ADDRESS = "ConnectionRateLimitReached: Too many connections from this address"
TOO_MANY_FOR_USER = "ConnectionRateLimitReached: Too many connections for this user"
TOO_MANY_JOINS = "ClientJoinRateLimitReached: Too many joins per second"
TOO_MANY_MESSAGES = "RateLimitReached: Too many messages per second"
TRACK_TOO_LARGE = "Track message size exceeded"
# A presence entry is stored in Redis for as long as the channel lives: bounded, like Supabase's track size limit.
MAX_PRESENCE_BYTES = 32 * 1024
# A socket over its address's cap stays open this long, so its client reads why its joins are refused.
REFUSED_SOCKET_SECONDS = 5.0


class ProcessFullError(Exception):
    """This process holds REALTIME_MAX_SOCKETS sockets already (the rest of its connections are kept for HTTP)."""


@dataclass(eq=False)
class Admission:
    """One accepted upgrade. `refused` is the reason every join on it is refused (its address is over its cap)."""

    address: str
    refused: str | None = None


class SocketCounts:
    """This process's sockets, by client address and by user."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.total = 0
        self._by_address: Counter[str] = Counter()
        self._by_user: Counter[str] = Counter()

    def admit(self, address: str) -> Admission:
        """Take a slot for an upgrade from `address`; ProcessFullError when the process has none left."""
        if self.total >= self.settings.realtime_max_sockets:
            raise ProcessFullError(f"this API process holds its maximum of {self.settings.realtime_max_sockets} "
                                   "sockets (API_WORKER_CONNECTIONS - REALTIME_HTTP_RESERVE)")
        self.total += 1
        if self._by_address[address] >= self.settings.realtime_max_sockets_per_ip:
            return Admission(address, refused=TOO_MANY_FROM_ADDRESS)
        self._by_address[address] += 1
        return Admission(address)

    def release(self, admission: Admission) -> None:
        self.total -= 1
        if admission.refused is None:
            self._by_address[admission.address] -= 1
            if self._by_address[admission.address] <= 0:
                del self._by_address[admission.address]

    def add_user(self, user_id: str) -> bool:
        """Count one more socket for `user_id`; False (and nothing counted) when the user is at the cap."""
        if self._by_user[user_id] >= self.settings.realtime_max_sockets_per_user:
            return False
        self._by_user[user_id] += 1
        return True

    def remove_user(self, user_id: str) -> None:
        self._by_user[user_id] -= 1
        if self._by_user[user_id] <= 0:
            del self._by_user[user_id]


class TokenBucket:
    """`rate` events per second on average, in bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
