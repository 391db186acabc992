"""The HTTP sender of the pipeline and end-to-end benchmarks: Debian's `wrk` (C, one thread) with
bench/wrk_bodies.lua, which POSTs each of a list of distinct JSON bodies exactly once — closed loop on N
connections (throughput), or open loop at a fixed rate (latency, counted from each request's due time as wrk2
does). `make bench` installs wrk with apt when it is missing and the user is root.

The sender's own CPU is measured like every other process's, so a report can say what the load generator cost.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).with_name("wrk_bodies.lua")


class WrkMissing(RuntimeError):
    pass


def wrk_path() -> str:
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing("the benchmarks send HTTP with wrk: `make bench` installs it as root, or: "
                         "sudo apt-get install wrk")
    return found


def wrk_version() -> str:
    try:
        done = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True, timeout=10)
    except (WrkMissing, OSError, subprocess.SubprocessError):
        return "not installed"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"


@dataclass
class Sent:
    """What one wrk run did: statuses, each request's send time (time.monotonic clock), the wall of the run."""
    command: str
    statuses: dict[int, int]
    start: float
    finished: float
    sent_at: list[float]
    rate: float
    cpu_s: float
    stdout: str = field(repr=False, default="")

    @property
    def latency(self) -> dict[str, float]:
        """wrk's own answer-time percentiles (ms; from each request's send, not its due time)."""
        units = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
        found = re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", self.stdout, re.MULTILINE)
        return {f"p{p}_ms": round(float(v) * units[u], 2) for p, v, u in found}

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def accepted(self) -> int:
        return self.statuses.get(202, 0) + self.statuses.get(200, 0)

    @property
    def wall_s(self) -> float:
        return self.finished - self.start

    def due(self, n: int) -> float:
        """When request n (0-based) was due: its slot in an open-loop run, its send time in a closed one."""
        return self.start + n / self.rate if self.rate > 0 else self.sent_at[n]


class Wrk:
    """`Wrk(url, bodies, ...).start()` then `.wait()`; or `.run()`. `bodies` are JSON-encodable objects, POSTed in
    order. `headers` are sent with every request."""

    def __init__(self, url: str, bodies: list, *, connections: int, rate: float = 0, headers: dict[str, str],
                 cap_seconds: int = 1800) -> None:
        self.url = url
        self.count = len(bodies)
        self.distinct = len({json.dumps(b, sort_keys=True) for b in bodies})
        self.connections = max(1, min(connections, self.count))
        self.rate = rate
        self.cap_seconds = cap_seconds
        self.tmp = tempfile.TemporaryDirectory(prefix="segbase-wrk-")
        self.bodies_path = Path(self.tmp.name) / "bodies.jsonl"
        self.out_path = Path(self.tmp.name) / "out.json"
        self.bodies_path.write_text("".join(json.dumps(b, separators=(",", ":")) + "\n" for b in bodies))
        self.command = [wrk_path(), "-t1", f"-c{self.connections}", f"-d{cap_seconds}s", "--timeout", "60s", "--latency",
                        "-s", str(LUA), url, "--", str(self.bodies_path), str(self.out_path), str(rate),
                        *(f"{k}: {v}" for k, v in headers.items())]
        self.process: subprocess.Popen | None = None

    def shown(self) -> str:
        """The command as the report prints it (temporary paths and the API key left out)."""
        mode = f"open loop at {self.rate:g}/s" if self.rate > 0 else "closed loop"
        path = "/" + self.url.split("//", 1)[-1].partition("/")[2]
        kinds = "each distinct" if self.distinct == self.count else f"{self.distinct} distinct"
        return f"wrk -t1 -c{self.connections} -s bench/wrk_bodies.lua {path} ({self.count} bodies, {kinds}, {mode})"

    def start(self) -> Wrk:
        self.log = open(Path(self.tmp.name) / "stdout.txt", "w+")  # noqa: SIM115 — closed in wait()
        self.process = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait(self) -> Sent:
        """Wait for wrk to stop (after the last answer, or at the cap); its CPU time from its own rusage."""
        assert self.process is not None
        try:
            deadline = time.monotonic() + self.cap_seconds + 60
            while True:
                pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)  # not poll(): keep the rusage
                if pid:
                    break
                if self.out_path.exists() or time.monotonic() > deadline:
                    self.process.send_signal(signal.SIGINT)  # wrk prints its summary and exits
                    _, status, usage = os.wait4(self.process.pid, 0)
                    break
                time.sleep(0.02)
            self.process.returncode = os.waitstatus_to_exitcode(status)
            self.log.seek(0)
            stdout = self.log.read()
            self.log.close()
            if not self.out_path.exists():
                raise RuntimeError(f"wrk stopped before every request was answered:\n{stdout}")
            data = json.loads(self.out_path.read_text())
        finally:
            self.tmp.cleanup()
        return Sent(command=self.shown(), statuses={int(k): v for k, v in data["statuses"].items()},
                    start=data["start"], finished=data["finished"], sent_at=data["sent"], rate=float(data["rate"]),
                    cpu_s=usage.ru_utime + usage.ru_stime, stdout=stdout)

    def run(self) -> Sent:
        return self.start().wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid
