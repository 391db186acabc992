"""A real HTTP receiver standing in for an inference backend in push tests: it records every request (headers,
body, arrival time) and answers as a test scripts it — fail the first N, 429 with Retry-After, 410, answer late,
hold a request until released — and it can go down and come back on the same port."""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from tests.support.processes import free_port, wait_for


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival

    @property
    def message(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def job_id(self) -> str:
        return self.message["data"]["job_id"]

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    hold: threading.Event | None = None  # answer only once this is set


Behaviour = Callable[[Received, int], Reply]  # (the request, how many arrived before it) -> the answer


def always(status: int = 200, **kwargs) -> Behaviour:
    return lambda request, index: Reply(status, **kwargs)


def fail_first(count: int, status: int = 500) -> Behaviour:
    return lambda request, index: Reply(status) if index < count else Reply(200)


class Receiver:
    def __init__(self, behaviour: Behaviour | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.behaviour = behaviour or always(200)
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.connections: set[socket.socket] = set()  # open (kept-alive) connections, closed when it goes down

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jobs"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver.connections.add(self.connection)

            def finish(self) -> None:
                with receiver.lock:
                    receiver.connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:  # noqa: N802 — the http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                with receiver.lock:
                    index = len(receiver.received)
                    receiver.received.append(request)
                reply = receiver.behaviour(request, index)
                if reply.hold is not None:
                    reply.hold.wait(120)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up (its timeout) or died

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until `start()` again, and the connections a sender keeps alive
        are closed, as a backend that goes down closes them."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            connections, self.connections = self.connections, set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the sender

    def requests(self, job_id: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if job_id is None or r.job_id == job_id]

    def wait_for_requests(self, count: int, job_id: str | None = None, timeout: float = 60) -> list[Received]:
        return wait_for(lambda: len(got := self.requests(job_id)) >= count and got, timeout=timeout,
                        message=f"{count} deliveries{f' of {job_id}' if job_id else ''}")

    def verify(self, secret: str, request: Received) -> dict[str, Any]:
        """Check a delivery's Standard Webhooks signature as a backend would; returns the message."""
        return Webhook(secret).verify(request.body, request.headers)
