"""Password hashing: argon2id (argon2-cffi) in a bounded pool of real OS threads.

One argon2 hash takes tens of milliseconds of CPU. Run on the gevent loop it would freeze every request and
WebSocket of the process for that long, so hashing always runs in a pool of AUTH_HASH_THREADS real threads:
gevent's `ThreadPool` when gevent has patched `threading` (under `segbase api`), a `ThreadPoolExecutor` otherwise.
argon2-cffi releases the GIL while hashing, so the threads use the cores in parallel.

Two lanes share the pool. Sign-ins and sign-ups take any free thread; account changes (a password change through
`PUT /user`, the admin API setting a password) may hold at most half of the threads at once, so a user hammering
`PUT /user` queues behind their own requests and never fills the pool other users sign in through.
"""
from __future__ import annotations

from collections.abc import Callable
import threading
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Any, TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

T = TypeVar("T")

# OWASP Password Storage Cheat Sheet, first argon2id configuration: m=19 MiB, t=2, p=1. p=1 because the pool,
# not one hash, spreads the work over the cores.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
ARGON2_HASH_LEN = 32
ARGON2_SALT_LEN = 16


class Lane(Enum):
    SIGN_IN = "sign_in"  # sign-in, sign-up: any free thread
    ACCOUNT_CHANGE = "account_change"  # PUT /user password, admin password set: at most half the threads


def gevent_is_active() -> bool:
    try:  # gevent is optional: without it (tests, tools) hashing uses plain threads
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("threading")


def new_argon2() -> argon2.PasswordHasher:
    return argon2.PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                                 parallelism=ARGON2_PARALLELISM, hash_len=ARGON2_HASH_LEN,
                                 salt_len=ARGON2_SALT_LEN, type=argon2.Type.ID)


class PasswordHasher:
    """Hash and verify passwords off the event loop; counts verifications (the dummy-verify test reads them)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._argon2 = new_argon2()
        self.uses_gevent = gevent_is_active()
        if self.uses_gevent:
            from gevent.threadpool import (
                ThreadPool,  # only under gevent (see gevent_is_active)
            )

            self._gevent_pool = ThreadPool(maxsize=threads)
        else:
            self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        # Created here, in the serving process: under gevent, `threading` is patched and this semaphore is a
        # cooperative one (a waiting greenlet yields).
        self.account_change_threads = max(1, threads // 2)
        self._account_change_slots = threading.BoundedSemaphore(self.account_change_threads)
        self._dummy_hash: str | None = None
        self.verifications = 0
        self.dummy_verifications = 0

    def run_in_pool(self, fn: Callable[..., T], *args: Any, lane: Lane = Lane.SIGN_IN) -> T:
        """Run `fn(*args)` on a pool thread; the calling greenlet (or thread) waits without blocking the loop."""
        if lane is Lane.ACCOUNT_CHANGE:
            with self._account_change_slots:
                return self._run(fn, *args)
        return self._run(fn, *args)

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.uses_gevent:
            return self._gevent_pool.apply(fn, args)
        return self._executor.submit(fn, *args).result()

    def hash(self, password: str, *, lane: Lane = Lane.SIGN_IN) -> str:
        return self.run_in_pool(self._argon2.hash, password, lane=lane)

    def verify(self, password_hash: str, password: str, *, lane: Lane = Lane.SIGN_IN) -> bool:
        """True if `password` matches; a malformed or empty stored hash never matches."""
        self.verifications += 1
        return self.run_in_pool(self._verify, password_hash, password, lane=lane)

    def verify_dummy(self, password: str) -> bool:
        """Spend what a real verify costs, for an unknown email: the answer must not tell the two apart."""
        self.dummy_verifications += 1
        self.verifications += 1
        self.run_in_pool(self._verify_against_dummy, password)
        return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def _verify(self, password_hash: str, password: str) -> bool:
        if not password_hash:
            return False
        try:
            return self._argon2.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _verify_against_dummy(self, password: str) -> bool:
        # Made on first use, on a pool thread; two threads racing both make one, which is harmless.
        if self._dummy_hash is None:
            self._dummy_hash = self._argon2.hash("segbase dummy password for unknown emails")
        return self._verify(self._dummy_hash, password)

    def close(self) -> None:
        if self.uses_gevent:
            self._gevent_pool.kill()
        else:
            self._executor.shutdown(wait=False)
