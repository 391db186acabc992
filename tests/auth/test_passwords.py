"""Passwords: argon2id at or above OWASP's minimum, no truncation, a dummy verify for unknown emails, and hashing
on real threads (never on the gevent loop)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest

from api.auth.errors import AuthError
from api.auth.passwords import (
    ARGON2_MEMORY_KIB,
    ARGON2_PARALLELISM,
    ARGON2_TIME_COST,
    Lane,
    PasswordHasher,
    new_argon2,
)
from api.auth.service import sign_in_with_password, sign_up
from tests.support.auth import new_email
from tests.support.processes import ROOT, wait_for


def test_parameters_meet_owasp_minimum():
    assert ARGON2_MEMORY_KIB >= 19 * 1024 and ARGON2_TIME_COST >= 2 and ARGON2_PARALLELISM >= 1
    encoded = new_argon2().hash("x")
    assert encoded.startswith(f"$argon2id$v=19$m={ARGON2_MEMORY_KIB},t={ARGON2_TIME_COST},p={ARGON2_PARALLELISM}$")


def test_long_passwords_are_not_truncated(auth_context):
    password = "p" * 100 + "-tail"
    stored = auth_context.hasher.hash(password)
    assert auth_context.hasher.verify(stored, password)
    assert not auth_context.hasher.verify(stored, password[:72])
    assert not auth_context.hasher.verify(stored, password[:-1] + "X")


def test_unknown_email_runs_a_dummy_verify_and_answers_like_a_wrong_password(auth_context):
    email = new_email()
    sign_up(auth_context, email=email, password="long enough password", data={})
    hasher = auth_context.hasher
    errors = []
    for login in (email, new_email()):
        verifications, dummies = hasher.verifications, hasher.dummy_verifications
        with pytest.raises(AuthError) as refused:
            sign_in_with_password(auth_context, email=login, password="not the password")
        errors.append((refused.value.status, refused.value.code, refused.value.message))
        assert hasher.verifications == verifications + 1  # exactly one argon2 verify either way
        assert hasher.dummy_verifications == dummies + (0 if login == email else 1)
    assert errors[0] == errors[1] == (400, "invalid_credentials", "Invalid login credentials")


def test_plain_process_uses_a_thread_pool():
    hasher = PasswordHasher(2)
    try:
        assert not hasher.uses_gevent
        assert hasher.run_in_pool(threading.get_ident) != threading.get_ident()
    finally:
        hasher.close()


def test_account_changes_cannot_fill_the_pool_sign_ins_use():
    """Eight password changes queued at once hold at most half the threads: a sign-in submitted after them runs
    on the other half instead of waiting behind all eight (it would, in one first-come queue)."""
    hasher = PasswordHasher(2)
    assert hasher.account_change_threads == 1
    done: list[str] = []
    started = [0]
    lock = threading.Lock()

    def change_password(n: int) -> None:
        with lock:
            started[0] += 1
        hasher.hash(f"new password {n}", lane=Lane.ACCOUNT_CHANGE)
        with lock:
            done.append("change")

    changes = [threading.Thread(target=change_password, args=(n,)) for n in range(8)]
    try:
        for thread in changes:
            thread.start()
        wait_for(lambda: started[0] == 8, 30, message="password changes queued")
        hasher.verify(hasher.hash("a sign-in"), "a sign-in")  # two hashes' worth of sign-in work
        with lock:
            changes_before_sign_in = len(done)
        for thread in changes:
            thread.join(60)
        assert len(done) == 8
        assert changes_before_sign_in <= 4, changes_before_sign_in
    finally:
        hasher.close()


GEVENT_PROBE = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, gevent
    from api.auth.passwords import PasswordHasher

    native_id = monkey.get_original("threading", "get_native_id")
    hasher = PasswordHasher(2)
    ticks = [0]
    seen = {}

    def ticker():
        while True:
            ticks[0] += 1
            gevent.sleep(0)

    def login():
        seen["hash_thread"] = hasher.run_in_pool(native_id)
        before = ticks[0]
        stored = hasher.hash("correct horse battery")
        seen["ticks_during_hash"] = ticks[0] - before
        seen["verified"] = hasher.verify(stored, "correct horse battery")

    background = gevent.spawn(ticker)
    gevent.spawn(login).join()
    background.kill()
    print(json.dumps({"uses_gevent": hasher.uses_gevent, "loop_thread": native_id(), **seen}))
""")


def test_under_gevent_hashing_runs_on_real_threads_and_the_loop_keeps_running():
    result = subprocess.run([sys.executable, "-c", GEVENT_PROBE], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["uses_gevent"] is True and probe["verified"] is True
    assert probe["hash_thread"] != probe["loop_thread"]
    assert probe["ticks_during_hash"] > 0  # other greenlets ran while the hash was computed
