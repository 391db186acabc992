"""Prometheus metrics for every segbase process (prometheus-client).

Processes that fork (gunicorn workers, Celery's prefork pool) use prometheus-client's multiprocess mode: each
process writes its samples into `PROMETHEUS_MULTIPROC_DIR`, and whoever serves `/metrics` aggregates the files.
`segbase.metrics_dir.prepare_multiprocess_dir()` must run before prometheus-client is first imported (it picks
its value class at import time); the process entry points (`segbase api`, `worker`, `relay`) call it first.
"""
from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from segbase.metrics_dir import MULTIPROC_ENV

HTTP_REQUESTS = Counter("segbase_http_requests_total", "HTTP requests by route and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("segbase_http_request_duration_seconds", "HTTP request latency by route",
                         ["method", "route"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
WEBHOOK_EVENTS = Counter("segbase_webhook_events_total",
                         "Webhook events by outcome: accepted, duplicate, or the final inbox state",
                         ["state"])
TASKS = Counter("segbase_tasks_total", "Celery tasks by name and outcome", ["task", "outcome"])
TASK_DURATION = Histogram("segbase_task_duration_seconds", "Celery task run time", ["task"],
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
INBOX_LAG = Gauge("segbase_inbox_oldest_unapplied_seconds", "Age of the oldest unapplied inbox event",
                  multiprocess_mode="max")
OUTBOX_LAG = Gauge("segbase_outbox_oldest_unsent_seconds", "Age of the oldest unsent outbox event",
                   multiprocess_mode="max")
OUTBOX_PUBLISHED = Counter("segbase_outbox_events_published_total", "Outbox events published to Redis")
WS_CONNECTIONS = Gauge("segbase_websocket_connections", "Open realtime WebSocket connections",
                       multiprocess_mode="livesum")
WS_FRAMES = Counter("segbase_websocket_frames_sent_total", "Realtime frames sent, by event", ["event"])
WS_DROPPED = Counter("segbase_websocket_slow_consumers_closed_total",
                     "Sockets closed because their send queue was full")
CLEANUP_DELETED = Counter("segbase_cleanup_rows_deleted_total", "Rows deleted by cleanup jobs", ["table"])
RESULTS_TIMED_OUT = Counter("segbase_results_timed_out_total", "Results moved to error by reconciliation")
LATE_EVENTS = Counter("segbase_webhook_late_events_total", "Events arriving for results already timed out")


def render_metrics() -> tuple[bytes, str]:
    """The exposition text: aggregated over every process of this tree in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a dead child's live gauges (gunicorn `child_exit`, Celery worker shutdown)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
