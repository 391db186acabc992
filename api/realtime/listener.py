"""The process's one Redis subscription to the relay's channel, kept alive forever in a background greenlet.

Pub/sub keeps nothing: a message published while this process is not subscribed is gone, so after a lost
subscription comes back `on_resubscribed` runs (the hub errors every channel so clients rejoin and re-query)."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from broker.channels import changes_channel
from schemas.settings import Settings

log = logging.getLogger("segbase.realtime")

FIRST_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 5.0
BATCH_LIMIT = 200  # messages handed to the fan-out at once


class ChangeListener:
    def __init__(self, settings: Settings, on_message: Callable[[list[bytes]], object],
                 on_resubscribed: Callable[[], None]) -> None:
        self.settings = settings
        self.channel_name = changes_channel(settings)
        self.on_message = on_message
        self.on_resubscribed = on_resubscribed
        self.subscribed = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._subscribe_forever, name="realtime-subscriber", daemon=True).start()

    def _subscribe_forever(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        interrupted = False
        while True:
            client = redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2,
                                          health_check_interval=15)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel_name)
                if interrupted:
                    self.on_resubscribed()
                    interrupted = False
                self.subscribed.set()
                backoff = FIRST_BACKOFF_SECONDS
                while True:
                    message = pubsub.get_message(timeout=5.0)
                    if message is None or message.get("type") != "message":
                        continue
                    # Whatever else has already arrived goes with it: the fan-out asks RLS once per batch.
                    batch = [message["data"]]
                    while len(batch) < BATCH_LIMIT:
                        more = pubsub.get_message(timeout=0)
                        if more is None:
                            break
                        if more.get("type") == "message":
                            batch.append(more["data"])
                    self.on_message(batch)
            except redis.RedisError as exc:
                log.warning("realtime subscription lost (%s); resubscribing", exc.__class__.__name__)
            except Exception:
                log.exception("realtime subscriber failed; resubscribing")
            finally:
                self.subscribed.clear()
                interrupted = True
                try:
                    pubsub.close()
                    client.close()
                except Exception:
                    log.debug("closing the broken subscription failed", exc_info=True)
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
