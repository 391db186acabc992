"""Abuse limits for /auth/v1 in Redis: fixed windows per client IP and per email, shared by every API process.

Buckets: `sign_in` (sign-ins and sign-ups, per IP and per email: AUTH_RATE_LIMIT_SIGN_IN), `refresh` (per IP:
AUTH_RATE_LIMIT_REFRESH) and `user` (PUT /user, per IP and per user: AUTH_RATE_LIMIT_USER), each per
AUTH_RATE_LIMIT_WINDOW_SECONDS — GoTrue's defaults are 30, 150 and 30 per 5 minutes (supabase/auth
`internal/api/apilimiter/apilimiter.go`: the user limiter uses RATE_LIMIT_OTP).
Emails are hashed before they become key parts, so Redis never holds an address.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from functools import lru_cache

import redis

from api.auth.errors import RateLimitedError
from schemas.settings import Settings

log = logging.getLogger(__name__)


@lru_cache(maxsize=32)
def _trusted_networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _is_trusted(address: str, settings: Settings) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _trusted_networks(tuple(settings.trusted_proxies)))


def client_ip(remote_addr: str | None, forwarded_for: str | None, settings: Settings) -> str:
    """The client's address: the peer, unless the peer is a TRUSTED_PROXIES member; then the right-most
    `X-Forwarded-For` hop that is not itself a trusted proxy (left-most hops are whatever the client wrote)."""
    address = remote_addr or "unknown"
    if not forwarded_for or not settings.trusted_proxies or not _is_trusted(address, settings):
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # a garbled header is not believed
        if not _is_trusted(hop, settings):
            return hop
        address = hop
    return address


def email_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class RateLimiter:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings

    def hit(self, bucket: str, subject: str, limit: int) -> None:
        """Count one request for (bucket, subject); raise RateLimitedError once the window's count passes `limit`.

        If Redis is unreachable the request is let through and logged: auth stays up, the limit is best-effort.
        """
        window = self.settings.auth_rate_limit_window_seconds
        now = time.time()
        window_start = int(now // window) * window
        key = self.settings.redis_key("auth", "rate", bucket, subject, str(window_start))
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, window + 5)
            count = pipe.execute()[0]
        except redis.RedisError:
            log.warning("auth rate limit skipped: Redis unavailable", extra={"bucket": bucket})
            return
        if count > limit:
            setting = f"AUTH_RATE_LIMIT_{bucket.rsplit('_', 1)[0].upper()}"  # sign_in_ip: AUTH_RATE_LIMIT_SIGN_IN
            raise RateLimitedError(int(window_start + window - now) + 1,
                                   f"{limit} per {window} s ({setting} per AUTH_RATE_LIMIT_WINDOW_SECONDS)")

    def sign_in_ip(self, ip: str) -> None:
        """Sign-ins and sign-ups from one address (checked before the body is read)."""
        self.hit("sign_in_ip", ip, self.settings.auth_rate_limit_sign_in)

    def sign_in_email(self, email: str) -> None:
        """Sign-ins and sign-ups for one address, from anywhere (slows guessing one account's password)."""
        self.hit("sign_in_email", email_key(email), self.settings.auth_rate_limit_sign_in)

    def refresh(self, ip: str) -> None:
        self.hit("refresh_ip", ip, self.settings.auth_rate_limit_refresh)

    def user_update(self, ip: str, user_id: str) -> None:
        """PUT /user from one address and for one user (a password change costs two hashes)."""
        self.hit("user_ip", ip, self.settings.auth_rate_limit_user)
        self.hit("user_id", user_id, self.settings.auth_rate_limit_user)
