"""supabase-py's realtime tests against segbase, when they are present (`REALTIME_PY_SUITE`, see
tests/conformance/realtime_py.py for the steps); skipped otherwise. docs/REALTIME.md lists the counts."""
from __future__ import annotations

import pytest

from tests.conformance.realtime_py import run, suite_path

# Fails with the pinned client for a reason outside segbase: the test replaces the channel's join push with a
# mock that never answers, and realtime 2.34's `subscribe()` waits for the join reply (2.30, which the suite was
# written against, did not). It never opens a socket.
CLIENT_VERSION_ONLY = {"test_presence_enabled_when_callbacks_attached"}


@pytest.mark.slow
@pytest.mark.skipif(suite_path() is None, reason="REALTIME_PY_SUITE is not set")
def test_supabase_py_realtime_suite_passes() -> None:
    suite = suite_path()
    assert suite is not None
    outcome = run(suite)
    print(outcome.summary())
    assert len(outcome.passed) >= 22
    assert {name.rsplit("::", 1)[-1] for name in outcome.failed} <= CLIENT_VERSION_ONLY, outcome.summary()
