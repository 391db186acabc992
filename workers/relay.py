"""`segbase relay`: publishes committed outbox events to Redis pub/sub. Filled in by the Realtime issue."""
from __future__ import annotations

import signal
import threading

from schemas.settings import Settings


def run_relay(settings: Settings) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    return 0
