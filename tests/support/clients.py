"""Drivers for the real clients: supabase-js under Node (a subprocess speaking JSON lines) and supabase-py."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NODE_SCRIPT = ROOT / "tests" / "node" / "realtime_clients.mjs"


class NodeRealtimeClient:
    """`node --experimental-websocket tests/node/realtime_clients.mjs` subscribed to the given channels."""

    def __init__(self, url: str, anon_key: str, token: str, channels: list[dict[str, Any]],
                 vsn: str | None = None) -> None:
        env = {**os.environ, "SUPABASE_URL": url, "SUPABASE_ANON_KEY": anon_key, "ACCESS_TOKEN": token}
        if vsn:
            env["REALTIME_VSN"] = vsn
        self.proc = subprocess.Popen(["node", "--experimental-websocket", "--no-warnings", str(NODE_SCRIPT),
                                      json.dumps(channels)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.lines.put(json.loads(line))

    def wait(self, predicate, timeout: float = 20) -> dict[str, Any]:
        for index, item in enumerate(self.seen):
            if predicate(item):
                return self.seen.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stderr = ""
                raise AssertionError(f"node client: nothing matched within {timeout}s; seen {self.seen} {stderr}")
            try:
                item = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(item):
                return item
            self.seen.append(item)

    def wait_subscribed(self, channel: str, timeout: float = 20) -> None:
        status = self.wait(lambda m: m["kind"] == "status" and m["channel"] == channel, timeout)
        assert status["status"] == "SUBSCRIBED", status

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.seen.append(self.lines.get(timeout=remaining))
            except queue.Empty:
                break
        found, self.seen = self.seen, []
        return found

    def command(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command(cmd="exit")
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def change_events(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["kind"] == "change"]
