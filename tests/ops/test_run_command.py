"""`segbase run` (what `make run` starts): migrate, then api + worker + beat + relay with prefixed logs; Ctrl-C
stops everything gracefully. Real processes on the session database, under an INSTANCE_ID of its own."""
from __future__ import annotations

import os
import signal
import subprocess
import uuid

import httpx

from tests.support.processes import SegbaseProcess, free_port, wait_for


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def test_run_serves_healthz_with_every_process_and_ctrl_c_stops_them_all_cleanly(settings) -> None:
    port = free_port()
    run_settings = settings.model_copy(update={"api_port": port, "worker_concurrency": 1,
                                               "instance_id": f"r{uuid.uuid4().hex[:10]}",
                                               "smtp_host": "127.0.0.1", "smtp_port": free_port(),
                                               "mail_catcher_port": free_port()})
    run = SegbaseProcess(run_settings, "run").start()
    children: list[int] = []
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(lambda: healthy() or not run.alive(), 60, 0.2, message="GET /healthz on the run's port")
        assert run.alive(), run.log_text()

        def logged(process: str, text: str) -> bool:
            prefix = f"{process:>6} | "  # segbase run's prefix for that child's lines
            return any(line.startswith(prefix) and text in line for line in run.log_text().splitlines())

        for process, text in (("relay", "relay active"), ("worker", " ready."), ("beat", "beat")):
            wait_for(lambda: logged(process, text) or not run.alive(), 60, 0.2, message=f"{process} started")
        assert run.alive(), run.log_text()
        banner = run.log_text()
        assert f"segbase: API http://127.0.0.1:{port}" in banner and "anon key:" in banner
        children += children_of(run.pid)
        assert len(children) == 5, children  # api, worker, beat, relay, mail catcher

        run.signal(signal.SIGINT)  # a terminal's Ctrl-C: the foreground process group, i.e. `segbase run`
        assert run.proc.wait(timeout=60) == 0, run.log_text()
        for child in children:
            try:
                os.kill(child, 0)
                raise AssertionError(f"child {child} outlived `segbase run`:\n{run.log_text()}")
            except ProcessLookupError:
                pass
        output = run.log_text()
        assert "Traceback" not in output and "SystemExit" not in output, output
    finally:
        leftovers = set(children) | (set(children_of(run.pid)) if run.alive() else set())
        if run.alive():
            run.kill()
        for child in leftovers:  # each is a session leader: its group holds its own workers
            try:
                os.killpg(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
