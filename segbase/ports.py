"""Whether the API's port is free, checked before anything starts. Kept apart from segbase/preflight.py, which imports
psycopg: `segbase api` checks its port in gunicorn's master, which must not import psycopg before gevent patches its
workers (psycopg chooses how to wait when it is first imported)."""
from __future__ import annotations

import errno
import socket


def port_problem(host: str, port: int) -> str | None:
    """Why `segbase api` could not listen on host:port, or None. Binds a probe socket the way gunicorn does
    (SO_REUSEADDR, so connections of an earlier run in TIME_WAIT do not count as taken)."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use (another segbase? `segbase status` tells); "
                        f"stop what holds it, or set API_PORT to another port")
            return f"cannot listen on {host}:{port}: {exc.strerror} (check API_HOST and API_PORT)"
    return None
