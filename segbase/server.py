"""`segbase api`: gunicorn with gevent workers (flask-sock needs no more), configured from Settings."""
from __future__ import annotations

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
        from api import create_app

        return create_app(self.settings)


def _child_exit(server, worker) -> None:
    from segbase.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def run_api(settings: Settings, port: int | None = None) -> None:
    from segbase.metrics_dir import prepare_multiprocess_dir

    prepare_multiprocess_dir("api", settings.instance_id)  # before any worker forks
    options = gunicorn_options(settings, port)
    options["child_exit"] = _child_exit
    ApiServer(settings, options).run()
