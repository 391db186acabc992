"""`segbase api`: gunicorn with gevent workers (flask-sock needs no more), configured from Settings.

Graceful shutdown (SIGTERM): gunicorn's arbiter closes the listening sockets (no new connections) and passes
SIGTERM to its workers; each worker stops accepting, lets in-flight requests finish for up to
API_GRACEFUL_TIMEOUT_SECONDS, and — through `_close_websockets_on_shutdown` — closes its realtime WebSockets at
once with a 1001 "going away" close frame, so clients reconnect to another API process instead of waiting for the
timeout and seeing the TCP connection cut.

Files (storage downloads handed to `wsgi.file_wrapper`) leave with os.sendfile: gunicorn calls the client socket's
`sendfile()`, which gevent implements as Python `send()`s of 8 KiB blocks read from the file; `_post_worker_init`
gives gevent's sockets a `sendfile` that calls os.sendfile (no copy through Python) and waits for the socket
cooperatively when its buffer is full.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn.app.base import BaseApplication

from schemas.settings import Settings


def gunicorn_options(settings: Settings, port: int | None = None) -> dict[str, Any]:
    return {
        "bind": f"{settings.api_host}:{port if port is not None else settings.api_port}",
        "workers": settings.api_workers,
        "worker_class": "gevent",
        # Each idle WebSocket holds one greenlet; this caps sockets + requests per worker process.
        "worker_connections": settings.api_worker_connections,
        "graceful_timeout": settings.api_graceful_timeout_seconds,
        "timeout": 60,
        "keepalive": 5,
        "accesslog": None,  # api/http.py logs each request without its query string
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": f"segbase-api[{settings.instance_id}]",
        # gunicorn's control socket has one default path per user: several API processes on one host (scaling,
        # tests) would take it from each other. segbase is managed by signals, so it is off.
        "control_socket_disable": True,
    }


class ApiServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from api import (
            create_app,  # in the worker: the app is built after gunicorn forks
        )

        return create_app(self.settings)


log = logging.getLogger("segbase.server")

SHUTDOWN_CLOSE_REASON = "server shutting down: reconnect"


SENDFILE_STEP_BYTES = 16 * 1024 * 1024  # one os.sendfile call at most (it returns early when the socket is full)


def _post_worker_init(worker) -> None:
    import gevent  # only inside a gevent worker; `segbase migrate` & co. never import gevent
    import gevent.socket  # as above

    # gevent records, for every greenlet it spawns, the spawning greenlet and a copy of the spawning stack (a
    # debugging aid, gevent.util.format_run_info): ~1 KiB kept for as long as each WebSocket's greenlet lives.
    gevent.config.track_greenlet_tree = False
    gevent.socket.socket.sendfile = _cooperative_sendfile
    gevent.spawn(_close_websockets_on_shutdown, worker)


def _cooperative_sendfile(sock, file, offset: int = 0, count: int | None = None) -> int:
    """socket.sendfile's contract (bytes `[offset, offset + count)` of `file`, its position left after what was sent)
    through os.sendfile on gevent's non-blocking socket, waiting for it to drain in the event loop."""
    from gevent.socket import wait_write  # only inside a gevent worker

    out_fd, in_fd = sock.fileno(), file.fileno()
    remaining = os.fstat(in_fd).st_size - offset if count is None else count
    sent_total = 0
    try:
        while remaining > 0:
            try:
                sent = os.sendfile(out_fd, in_fd, offset + sent_total, min(remaining, SENDFILE_STEP_BYTES))
            except BlockingIOError:
                wait_write(out_fd, timeout=sock.gettimeout())
                continue
            if sent == 0:  # the file ended early
                break
            sent_total += sent
            remaining -= sent
    finally:
        file.seek(offset + sent_total)
    return sent_total


def _close_websockets_on_shutdown(worker) -> None:
    """Wait (in a greenlet of the worker) until SIGTERM clears `worker.alive`, then close every WebSocket."""
    import gevent  # only inside a gevent worker

    while worker.alive:
        gevent.sleep(0.2)
    from api.realtime import (
        close_all_sockets,  # inside the worker only, like the app itself (see ApiServer.load)
    )

    closed = close_all_sockets(worker.wsgi, SHUTDOWN_CLOSE_REASON)
    log.info("shutting down: closed %d realtime sockets", closed)


def _child_exit(server, worker) -> None:
    # prometheus-client may be imported only after prepare_multiprocess_dir (it picks its mode at import)
    from observability.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def run_api(settings: Settings, port: int | None = None) -> None:
    from observability.metrics_dir import (
        prepare_multiprocess_dir,  # lazy, as every subcommand (segbase/cli.py)
    )

    prepare_multiprocess_dir("api", settings.instance_id)  # before any worker forks
    options = gunicorn_options(settings, port)
    options["child_exit"] = _child_exit
    options["post_worker_init"] = _post_worker_init
    ApiServer(settings, options).run()
