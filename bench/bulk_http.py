"""A client that costs little for one large HTTP/1.1 body, for the storage benchmark (bench/storage.py): the server
is what is measured there, and curl hands a download to its output file in 16 KiB pieces, spending several times
the CPU `cp` spends on the same bytes. Here an upload leaves with `socket.sendfile` on a blocking socket
(os.sendfile: the file's pages go to the socket without passing through Python) and a download moves from the
socket to its file with splice(2) through a 1 MiB pipe (os.splice: nor does it) — a few hundred system calls per
100 MB, as `cp` (copy_file_range) copies inside the kernel too. Linux only, as the benchmarks are.

One request per connection; the bodies segbase answers with for a whole object carry a Content-Length, which is
all this reads (a chunked or short answer is an error). Standard library only.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

BUFFER_BYTES = 4 * 1024 * 1024
HEAD_LIMIT = 64 * 1024
PIPE_BYTES = 1024 * 1024  # Linux's default pipe-max-size
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class BulkHttpError(RuntimeError):
    pass


def _open(url: str) -> tuple[socket.socket, str, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BulkHttpError(f"only http:// URLs: {url}")
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=120)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return sock, f"{parts.hostname}:{parts.port or 80}", target


def _request_head(method: str, target: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _response_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, the body bytes read along with the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(HEAD_LIMIT)
        if not chunk:
            raise BulkHttpError("the connection closed before the response head")
        data += chunk
        if len(data) > HEAD_LIMIT:
            raise BulkHttpError("response head too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def _read_exactly(sock: socket.socket, length: int, already: bytes) -> bytes:
    body = bytearray(already)
    while len(body) < length:
        chunk = sock.recv(min(BUFFER_BYTES, length - len(body)))
        if not chunk:
            raise BulkHttpError("the body ended early")
        body += chunk
    return bytes(body)


def upload(url: str, path: Path, headers: dict[str, str], method: str = "POST") -> tuple[int, bytes]:
    """Send the file as the request body (Content-Length, os.sendfile); returns (status, response body)."""
    size = path.stat().st_size
    sock, host, target = _open(url)
    with sock, open(path, "rb") as file:
        sock.sendall(_request_head(method, target, host, {**headers, "Content-Length": str(size)}))
        if sock.sendfile(file) != size:
            raise BulkHttpError("the file was not sent whole")
        status, response_headers, rest = _response_head(sock)
        return status, _read_exactly(sock, int(response_headers.get("content-length", "0")), rest)


def send_raw(port: int, path: Path, answer_bytes: int) -> bytes:
    """The upload's sending half without HTTP: the file to 127.0.0.1:`port` with os.sendfile, then read an answer
    of `answer_bytes` (bench/durable_receiver.py's `ok`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock, open(path, "rb") as file:
        if sock.sendfile(file) != path.stat().st_size:
            raise BulkHttpError("the file was not sent whole")
        return _read_exactly(sock, answer_bytes, b"")


def download(url: str, path: Path, headers: dict[str, str]) -> tuple[int, int]:
    """GET into `path`; returns (status, bytes written). A non-200 answer's body is not written."""
    sock, host, target = _open(url)
    with sock:
        sock.sendall(_request_head("GET", target, host, headers))
        status, response_headers, rest = _response_head(sock)
        if status != 200:
            return status, 0
        if "content-length" not in response_headers:
            raise BulkHttpError("no Content-Length in the answer")
        remaining = int(response_headers["content-length"]) - len(rest)
        with open(path, "wb", buffering=0) as out:
            written = out.write(rest) if rest else 0
            return status, written + splice_socket_into(sock, out.fileno(), remaining)


def splice_socket_into(sock: socket.socket, fd: int, length: int,
                       on_progress: Callable[[int], None] | None = None) -> int:
    """Move `length` bytes from the socket to the file `fd` through a pipe with splice(2): the kernel moves the
    pages, nothing is copied into this process. `on_progress(total)` after each step (bench/durable_receiver.py
    starts the blob writer's writeback with it)."""
    sock.settimeout(None)  # a socket with a timeout is non-blocking underneath, and splice would see EAGAIN
    read_end, write_end = os.pipe()
    try:
        with contextlib.suppress(OSError):  # a bigger pipe means fewer calls; the default 64 KiB works too
            fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_BYTES)
        moved = 0
        while moved < length:
            in_pipe = os.splice(sock.fileno(), write_end, min(PIPE_BYTES, length - moved))
            if not in_pipe:
                raise BulkHttpError("the body ended early")
            while in_pipe:
                done = os.splice(read_end, fd, in_pipe)
                in_pipe -= done
                moved += done
            if on_progress is not None:
                on_progress(moved)
        return moved
    finally:
        os.close(read_end)
        os.close(write_end)
