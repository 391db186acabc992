"""Shared by the benchmarks: percentiles, and py-spy sampling of live processes summarised into what dominates."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0.0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2) if ms else 0.0}


def py_spy_path() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


class Sampler:
    """`py-spy record --subprocesses` on one process tree for `seconds`, in the background: on-CPU samples only
    (with `idle=True`, waiting threads too). `.summary()` classifies every sample by the innermost frame that
    belongs to a known layer."""

    LAYERS = (  # checked from the innermost frame outwards; the first match names the sample
        ("argon2id hashing", ("argon2/",)),
        ("PostgreSQL round trips (psycopg)", ("psycopg",)),
        ("Redis / broker I/O (redis-py, kombu)", ("redis/", "kombu/")),
        ("logging", ("logging/",)),
        ("JSON / pydantic", ("json/", "pydantic", "orjson")),
        ("SQLAlchemy", ("sqlalchemy/",)),
        ("WebSocket send/recv (simple_websocket, wsproto)", ("simple_websocket", "wsproto")),
        ("gevent hub (idle / waiting for I/O)", ("gevent/",)),
        ("Celery / billiard machinery", ("celery/", "billiard/", "vine/")),
        ("HTTP server (gunicorn, werkzeug, flask)", ("gunicorn/", "werkzeug/", "flask/")),
        ("segbase code", ("/api/", "/db/", "/workers/", "/schemas/", "/segbase/")),
    )

    def __init__(self, pid: int, seconds: float, rate: int = 97, idle: bool = False) -> None:
        self.pid = pid
        self.out = Path(tempfile.mkstemp(prefix=f"segbase-pyspy-{pid}-", suffix=".txt")[1])
        exe = py_spy_path()
        self.proc = None
        if exe:
            self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), *(["--idle"] if idle else []),
                                          "--subprocesses",
                                          "--nonblocking", "--rate", str(rate), "--duration", str(int(seconds)),
                                          "--format", "raw", "--output", str(self.out)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def summary(self, busy_markers: tuple[str, ...] = (), top: int = 8) -> dict:
        """Samples per process; those whose stack holds one of `busy_markers` (the task or view function) are
        "busy", and their split by layer says what dominates the work; the rest is waiting for work/dispatch."""
        self.wait()
        if self.proc is None or not self.out.exists():
            return {"error": "py-spy not available"}
        busy_layers: Counter = Counter()
        idle_layers: Counter = Counter()
        leaves: Counter = Counter()
        per_process: Counter = Counter()
        busy_per_process: Counter = Counter()
        total = busy = 0
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            labels = [f.split(":", 1)[0] for f in frames if f.startswith("process ")]
            process = labels[-1] if labels else "?"
            total += n
            per_process[process] += n
            if any(marker in stack for marker in busy_markers):
                busy += n
                busy_per_process[process] += n
                busy_layers[self._layer(frames)] += n
                leaves[_short(frames[-1])] += n
            else:
                idle_layers[self._layer(frames)] += n
        self.out.unlink(missing_ok=True)
        if not total:
            return {"error": "no samples"}
        return {"samples": total, "processes": len(per_process),
                "busy_pct_per_process": {p: round(100 * busy_per_process[p] / n, 1)
                                         for p, n in per_process.items()},
                "busy_by_layer_pct": {k: round(100 * v / max(busy, 1), 1) for k, v in busy_layers.most_common()},
                "busy_top_leaf_frames_pct": {k: round(100 * v / max(busy, 1), 1)
                                             for k, v in leaves.most_common(top)},
                "outside_busy_by_layer_pct": {k: round(100 * v / max(total - busy, 1), 1)
                                              for k, v in idle_layers.most_common(5)}}

    def _layer(self, frames: list[str]) -> str:
        for frame in reversed(frames):
            for name, needles in self.LAYERS:
                if any(needle in frame for needle in needles):
                    return name
        return "other (interpreter, stdlib)"


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` → `func (module.py)`."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":")[0]
    return f"{name} ({module})" if module else name


CLOCK_TICKS = __import__("os").sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time consumed so far by these processes (all their threads), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited: its time is lost to the accounting, say so where it matters
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


class CpuMeter:
    """CPU seconds per named group of processes between `start()` and `stop()`."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self.before = {name: cpu_seconds(pids) for name, pids in self.groups.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {name: cpu_seconds(pids) - self.before[name] for name, pids in self.groups.items()}
        return self.used

    def per_event_ms(self, events: int) -> dict[str, float]:
        return {name: round(1000 * used / max(events, 1), 2) for name, used in self.used.items()}
