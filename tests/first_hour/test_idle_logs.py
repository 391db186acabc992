"""An idle stack is quiet: once started, api, worker, beat and relay print nothing while nothing happens, though
beat sends the sweeper and reconciliation every second here (Celery's per-task lines are kept for DEBUG)."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from observability.logs import PER_TASK_LOGGERS, configure_logging
from tests.support.database import create_database, drop_database, make_test_settings, migrate_serialised
from tests.support.metrics import sample_value
from tests.support.pipeline import start_worker, stop_all
from tests.support.processes import ApiProcess, SegbaseProcess, free_port, wait_for

SWEEP = "segbase.sweep_webhook_inbox"
RECONCILE = "segbase.maintenance.reconcile_stuck_results"


def tasks_done(port: int, task: str) -> float:
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0
    return sample_value(body, "segbase_tasks_total", task=task, outcome="success") or 0


def info_lines(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            lines.append(line)  # anything not our JSON (a print, a warning) counts as noise too
            continue
        if entry.get("level") in ("info", "warning", "error", "critical"):
            lines.append(f"{entry['logger']}: {entry['msg']}")
    return [line for line in lines if line.strip()]


@pytest.fixture
def idle_database(settings, run_id) -> Iterator[str]:
    """A database of the test's own: the worker's database holds what earlier tests left (an unapplied inbox event
    is something to do, and its sweep and rejection would be printed, rightly)."""
    name = f"segbase_t_{run_id}_idle"
    url = create_database(name)
    try:
        migrate_serialised(settings.model_copy(update={"database_url": url}))
        yield url
    finally:
        drop_database(name)


def test_nothing_is_printed_while_nothing_happens(settings, idle_database):
    metrics_port = free_port()
    idle = make_test_settings(idle_database, f"{settings.instance_id}idle", log_level="INFO",
                              inbox_sweep_interval_seconds=1, reconcile_interval_seconds=1,
                              worker_metrics_port=metrics_port)
    api = ApiProcess(idle).start()
    worker = start_worker(idle, name="idle-worker", concurrency=1)
    beat = SegbaseProcess(idle, "beat").start()
    relay = SegbaseProcess(idle, "relay").start()
    processes = (api, worker, beat, relay)
    try:
        wait_for(lambda: "relay active" in relay.log_text(), timeout=60, message="the relay to be active")
        # Started once the periodic tasks run: everything printed so far is start-up.
        wait_for(lambda: tasks_done(metrics_port, SWEEP) >= 1 and tasks_done(metrics_port, RECONCILE) >= 1,
                 timeout=90, interval=0.2, message="beat's first sweep and reconciliation")
        marks = {process.name: len(process.log_text()) for process in processes}
        sweeps = tasks_done(metrics_port, SWEEP)
        wait_for(lambda: tasks_done(metrics_port, SWEEP) >= sweeps + 3
                 and tasks_done(metrics_port, RECONCILE) >= 2, timeout=90, interval=0.2,
                 message="three more idle sweeps")
        printed = {process.name: info_lines(process.log_text()[marks[process.name]:]) for process in processes}
    finally:
        stop_all(*processes)
    assert printed == {process.name: [] for process in processes}


def test_per_task_lines_come_back_at_debug():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("DEBUG")
        assert all(logging.getLogger(name).getEffectiveLevel() == logging.DEBUG for name in PER_TASK_LOGGERS)
        configure_logging("INFO")
        assert all(logging.getLogger(name).getEffectiveLevel() == logging.WARNING for name in PER_TASK_LOGGERS)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
