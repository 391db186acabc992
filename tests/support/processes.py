"""Real segbase processes for tests: `segbase api`, `worker`, `beat`, `relay`, started as subprocesses with the
test's Settings rendered into their environment (the test process's own os.environ is never edited)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = Path(os.environ.get("SEGBASE_TEST_LOGS", "/tmp/segbase-test-logs"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SegbaseProcess:
    """One `python -m segbase <command>` child; its output goes to a log file the test can read on failure."""

    def __init__(self, settings: Settings, command: str, *args: str, name: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.command = command
        self.args = args
        self.name = name or command
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{settings.instance_id}-{self.name}-{time.time_ns()}.log"

    def start(self) -> SegbaseProcess:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGBASE_", "PYTEST_"))}
        env.update(self.settings.to_env())
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        env["SEGBASE_ENV_FILE"] = ""  # every setting comes from `settings`, never from a developer's .env
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "segbase", self.command, *self.args], cwd=ROOT,
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, not a shutdown)."""
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


class ApiProcess(SegbaseProcess):
    def __init__(self, settings: Settings, port: int | None = None, **kwargs) -> None:
        self.port = port or free_port()
        super().__init__(settings, "api", "--port", str(self.port), **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ApiProcess:
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"segbase api exited:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"segbase api did not become healthy:\n{self.log_text()}")


def wait_for(predicate, timeout: float = 30, interval: float = 0.05, message: str = "condition"):
    """Poll until `predicate()` is truthy and return it; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
