"""The storage benchmark's floor (bench/storage.py): loopback TCP bodies moved into blobs by segbase's own file blob
writer — splice(2) from the socket through a pipe, writeback started every few MiB, then fsync, rename and directory
fsync — with no HTTP and no database. An upload through /storage/v1 does all of this and more, so its time over this
floor is what HTTP, authentication and the two short transactions cost; this floor's time over `cp` is what moving
the bytes over TCP and making them durable costs, which no server avoids.

    python -m bench.durable_receiver --dir DIR --size BYTES --count N

prints the port it listens on (127.0.0.1), then for each of N connections reads exactly BYTES, commits them as a
blob under DIR and answers `ok`.
"""
from __future__ import annotations

import argparse
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.bulk_http import splice_socket_into
from db.storage.backends import FileBackend


class SocketSplice:
    """A socket's next `length` bytes as a source for FileBlobWriter.splice_from."""

    def __init__(self, sock: socket.socket, length: int) -> None:
        self.sock, self.length = sock, length

    def splice_into(self, fd: int, on_progress: Callable[[int], None]) -> int:
        return splice_socket_into(self.sock, fd, self.length, on_progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    backend = FileBackend(Path(args.dir))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        print(listener.getsockname()[1], flush=True)
        for _ in range(args.count):
            conn, _ = listener.accept()
            with conn:
                writer = backend.writer(str(uuid.uuid4()))
                writer.splice_from(SocketSplice(conn, args.size))
                writer.commit()
                conn.sendall(b"ok")


if __name__ == "__main__":
    main()
