"""`segbase mailcatcher`: a development SMTP server that keeps every mail and shows them over HTTP, like the mail
UI of a local Supabase (Inbucket/Mailpit). `segbase run` starts it when SMTP_HOST is a loopback address and
MAIL_CATCHER_PORT is not 0; `segbase status` prints where to read the mails.

SMTP on SMTP_HOST:SMTP_PORT (aiosmtpd), HTTP on 127.0.0.1:MAIL_CATCHER_PORT: `/` lists the mails (newest first,
plain-text bodies with their links), `/api/messages` gives them as JSON. Mails live in memory only (at most
MAX_MESSAGES). The tests start the same server in-process (`MailCatcher`) as their real SMTP server.
"""
from __future__ import annotations

import email
import email.policy
import json
import logging
import signal
import socket
import threading
import time
from email.message import EmailMessage
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from schemas.settings import Settings

MAX_MESSAGES = 500
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class _Handler:
    def __init__(self, catcher: MailCatcher) -> None:
        self.catcher = catcher

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        self.catcher.add(list(envelope.rcpt_tos), message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class MailCatcher:
    """An SMTP server keeping what it receives: `messages` holds (recipients, parsed message), oldest first."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    def add(self, recipients: list[str], message: EmailMessage) -> None:
        with self._lock:
            self.messages.append((recipients, message))
            del self.messages[:-MAX_MESSAGES]

    def start(self) -> MailCatcher:
        if not self.port:
            with socket.socket() as sock:
                sock.bind((self.host, 0))
                self.port = sock.getsockname()[1]
        from aiosmtpd.controller import Controller  # lazy: `segbase status` imports this module for catcher_url

        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        """The mails received for `address` (case-insensitive), oldest first."""
        with self._lock:
            return [m for rcpts, m in self.messages if address.lower() in (r.lower() for r in rcpts)]

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self.messages)
        out = []
        for recipients, message in reversed(items):
            body = message.get_body(preferencelist=("plain",))
            out.append({"to": recipients, "subject": message["Subject"], "date": message["Date"],
                        "message_id": message["Message-ID"], "text": body.get_content() if body else ""})
        return out


def _http_handler(catcher: MailCatcher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's hook name)
            mails = catcher.snapshot()
            if self.path.startswith("/api/messages"):
                body, kind = json.dumps(mails, indent=2).encode(), "application/json"
            else:
                items = "".join(f"<article><h3>{escape(m['subject'] or '')}</h3><p>to {escape(', '.join(m['to']))}"
                                f" · {escape(m['date'] or '')}</p><pre>{escape(m['text'])}</pre></article><hr>"
                                for m in mails) or "<p>No mail yet.</p>"
                body = (f"<!doctype html><meta charset=utf-8><title>segbase mail</title>"
                        f"<h1>Mails caught by segbase ({len(mails)})</h1>{items}").encode()
                kind = "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def catcher_url(settings: Settings) -> str | None:
    """Where `segbase run`'s catcher shows mails, or None when it does not run (mail goes to a real server)."""
    if settings.mail_catcher_port == 0 or settings.smtp_host not in LOOPBACK_HOSTS:
        return None
    return f"http://127.0.0.1:{settings.mail_catcher_port}"


def run_mailcatcher(settings: Settings) -> int:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO
    catcher = MailCatcher(settings.smtp_host, settings.smtp_port).start()
    http = ThreadingHTTPServer(("127.0.0.1", settings.mail_catcher_port), _http_handler(catcher))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(f"mail catcher: SMTP {settings.smtp_host}:{settings.smtp_port}, mails at "
          f"http://127.0.0.1:{settings.mail_catcher_port}", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    while not stopping.is_set():
        time.sleep(0.5)
    http.shutdown()
    catcher.stop()
    return 0
