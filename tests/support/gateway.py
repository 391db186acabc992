"""A stand-in for the Supabase CLI's API gateway in front of a live `segbase api`, for suites written against
`supabase start` that send no API key.

The CLI's Kong (supabase/cli `internal/start/templates/kong.yml`) adds `Authorization: Bearer <anon key>` to a
request that has none; segbase, like the hosted gateway, also wants an `apikey`. This proxy adds both when they are
missing and forwards everything else unchanged (method, path, query, headers, body), answering with the upstream's
status, reason, headers and body.
"""
from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade", "content-length"})


class Gateway:
    def __init__(self, upstream: str, anon_key: str, port: int, host: str = "127.0.0.1") -> None:
        target = urlsplit(upstream)
        self.upstream_host, self.upstream_port = target.hostname or "127.0.0.1", target.port or 80
        self.anon_key = anon_key
        self.requests = 0
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

            def _forward(self) -> None:
                gateway.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {name: value for name, value in self.headers.items()
                           if name.lower() not in HOP_BY_HOP}
                if not any(name.lower() == "apikey" for name in headers):
                    headers["apikey"] = gateway.anon_key
                if not any(name.lower() == "authorization" for name in headers):
                    headers["Authorization"] = f"Bearer {gateway.anon_key}"
                upstream = http.client.HTTPConnection(gateway.upstream_host, gateway.upstream_port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response_only(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in HOP_BY_HOP:
                            self.send_header(name, value)
                    if self.command != "HEAD":
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = do_DELETE = do_OPTIONS = _forward

        return Handler

    def __enter__(self) -> Gateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
