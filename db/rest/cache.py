"""The per-process schema cache and how it learns that migrations changed the schema.

Like PostgREST, it listens on the `pgrst` channel: `segbase migrate` sends `NOTIFY pgrst, 'reload schema'` after
applying migrations, and the next request loads the catalog again. A listener connection can miss a
notification (it is reconnecting, the database restarted), so two cheap fallbacks keep the cache honest: a request
that names a table, column or function the cache does not know reloads once (at most once a second) before
answering 404/400, and a lost listener connection marks the cache stale.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg

from db.rest.catalog import DEFAULT_SCHEMAS, Catalog, load_catalog

log = logging.getLogger(__name__)

CHANNEL = "pgrst"
MISS_RELOAD_INTERVAL_SECONDS = 1.0
LISTEN_RECONNECT_SECONDS = 2.0


class CatalogCache:
    def __init__(self, connect: Callable[[], psycopg.Connection],
                 schemas: tuple[str, ...] | list[str] = DEFAULT_SCHEMAS) -> None:
        self._connect = connect
        self.schemas = tuple(schemas)
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._loaded_at = 0.0
        self._stale = True
        self._listener: threading.Thread | None = None
        self.loads = 0

    def get(self) -> Catalog:
        if self._stale or self._catalog is None:
            self._reload()
            self.start_listener()  # once the database answered (lazily, so after gunicorn forked the worker)
        assert self._catalog is not None
        return self._catalog

    def invalidate(self) -> None:
        self._stale = True

    def reload_after_miss(self) -> bool:
        """A request named something unknown: reload unless that happened within the last second."""
        if time.monotonic() - self._loaded_at < MISS_RELOAD_INTERVAL_SECONDS:
            return False
        self._reload()
        return True

    def _reload(self) -> None:
        with self._lock:
            self._stale = False  # a notification arriving during the load marks it stale again
            with self._connect() as conn:
                catalog = load_catalog(conn, self.schemas)
            previous = self._catalog.fingerprint if self._catalog else None
            self._catalog, self._loaded_at = catalog, time.monotonic()
            self.loads += 1
            if previous != catalog.fingerprint:
                log.info("schema cache loaded", extra={"tables": len(catalog.tables),
                                                       "functions": len(catalog.functions),
                                                       "relationships": sum(map(len, catalog.relationships.values()))})

    def start_listener(self) -> None:
        """Start the LISTEN loop once per process."""
        with self._lock:
            if self._listener is not None:
                return
            self._listener = threading.Thread(target=self._listen_forever, name="pgrst-listener", daemon=True)
            self._listener.start()

    def _listen_forever(self) -> None:
        while True:
            try:
                with self._connect() as conn:
                    conn.autocommit = True
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.invalidate()  # anything may have changed while we were not listening
                    for notify in conn.notifies():
                        if notify.payload in ("", "reload schema"):
                            self.invalidate()
            except Exception:  # the listener must outlive database restarts
                log.warning("schema cache listener lost its connection; retrying", exc_info=True)
                self.invalidate()
                time.sleep(LISTEN_RECONNECT_SECONDS)
