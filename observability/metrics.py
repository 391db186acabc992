"""Prometheus metrics for every segbase process (prometheus-client).

Processes that fork (gunicorn workers, Celery's prefork pool) use prometheus-client's multiprocess mode: each
process writes its samples into `PROMETHEUS_MULTIPROC_DIR`, and whoever serves `/metrics` aggregates the files.
`observability.metrics_dir.prepare_multiprocess_dir()` must run before prometheus-client is first imported (it picks
its value class at import time); the process entry points (`segbase api`, `worker`, `relay`) call it first.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from celery import signals
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

from observability.metrics_dir import MULTIPROC_ENV

HTTP_REQUESTS = Counter("segbase_http_requests_total", "HTTP requests by route and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("segbase_http_request_duration_seconds", "HTTP request latency by route",
                         ["method", "route"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
WEBHOOK_EVENTS = Counter("segbase_webhook_events_total",
                         "Webhook events by outcome: accepted, duplicate, or the final inbox state",
                         ["state"])
WEBHOOK_GROUP_SIZE = Histogram("segbase_webhook_group_commit_events", "process-webhook requests per inbox commit",
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000))
TASKS = Counter("segbase_tasks_total", "Celery tasks by name and outcome", ["task", "outcome"])
TASK_DURATION = Histogram("segbase_task_duration_seconds", "Celery task run time", ["task"],
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
OUTBOX_PUBLISHED = Counter("segbase_outbox_events_published_total", "Outbox events published to Redis")
WS_CONNECTIONS = Gauge("segbase_websocket_connections", "Open realtime WebSocket connections",
                       multiprocess_mode="livesum")
WS_FRAMES = Counter("segbase_websocket_frames_sent_total", "Realtime frames sent, by event", ["event"])
WS_RLS_CHECKS = Counter("segbase_realtime_rls_checks_total",
                        "Database round trips evaluating RLS for realtime subscribers (one per change and process)")
WS_RLS_CALLERS = Counter("segbase_realtime_rls_callers_total", "Subscribers' identities evaluated under RLS")
WS_DROPPED = Counter("segbase_websocket_slow_consumers_closed_total",
                     "Sockets closed because their send queue was full")
CLEANUP_DELETED = Counter("segbase_cleanup_rows_deleted_total", "Rows deleted by cleanup jobs", ["table"])
RESULTS_TIMED_OUT = Counter("segbase_results_timed_out_total", "Results moved to error by reconciliation")
LATE_EVENTS = Counter("segbase_webhook_late_events_total", "Events arriving for results already timed out")
CLEANUP_RUNS = Counter("segbase_cleanup_runs_total", "cleanup-old-results runs by final state", ["state"])
DISPATCH_ATTEMPTS = Counter("segbase_dispatch_attempts_total",
                            "Push delivery attempts by result: delivered, failed, throttled, gone, stale",
                            ["result"])
DISPATCH_JOBS_FAILED = Counter("segbase_dispatch_jobs_failed_total",
                               "Jobs dispatch gave up on, by reason (dispatch_failed, dispatch_timeout, "
                               "source_image_not_readable)", ["reason"])
DISPATCH_CLAIMS = Counter("segbase_dispatch_jobs_leased_total", "Jobs leased through claim-jobs")
DISPATCH_LEASE_EXPIRIES = Counter("segbase_dispatch_lease_expiries_total",
                                  "Leases that expired and whose job was leased again")
DISPATCH_LATENCY = Histogram("segbase_dispatch_latency_seconds",
                             "Enqueued (result inserted) to the backend having the job: a push acknowledged, "
                             "or a lease granted", ["mode"],
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))

log = logging.getLogger("observability.metrics")

# Inbox/outbox lag and queue depth are read from PostgreSQL and Redis when /metrics is scraped (a collector, not
# gauges set by some process), so they are true whichever process serves the scrape and never go stale.
PIPELINE_GAUGES = {
    "inbox_oldest_unapplied_seconds": ("segbase_inbox_oldest_unapplied_seconds",
                                       "Age of the oldest unapplied (received) inbox event; 0 when none"),
    "inbox_unapplied": ("segbase_inbox_unapplied", "Inbox events not applied yet"),
    "outbox_oldest_unsent_seconds": ("segbase_outbox_oldest_unsent_seconds",
                                     "Age of the oldest unsent outbox event; 0 when none"),
    "outbox_unsent": ("segbase_outbox_unsent", "Outbox events not published yet"),
    "queue_depth": ("segbase_celery_queue_depth", "Messages waiting in the Celery queue"),
    "queue_unacked": ("segbase_celery_unacked", "Messages delivered to a worker and not acknowledged yet"),
    "dispatch_queued": ("segbase_dispatch_queue_depth",
                        "Jobs waiting in the dispatch queue (not delivered, leased or in a push attempt)"),
    "dispatch_ready": ("segbase_dispatch_ready", "Jobs takeable now (due, or held past their hold)"),
    "dispatch_oldest_waiting_seconds": ("segbase_dispatch_oldest_waiting_seconds",
                                        "Age of the oldest job not yet delivered nor leased; 0 when none"),
    "dispatch_sending": ("segbase_dispatch_in_flight", "Push attempts in flight"),
    "dispatch_leased": ("segbase_dispatch_leased", "Jobs leased to pull workers"),
    "dispatch_leases_expired": ("segbase_dispatch_leases_expired", "Leases past their expiry, not yet taken over"),
    "dispatch_failed": ("segbase_dispatch_failed_jobs",
                        "Jobs dispatch gave up on (retries exhausted, queue timeout, unreadable image) still kept"),
    "dispatch_disabled": ("segbase_dispatch_disabled",
                          "1 while push dispatch is disabled by a 410 (alert: run `segbase dispatch enable`)"),
    "dispatch_circuit_open": ("segbase_dispatch_circuit_open", "1 while the push endpoint's circuit breaker is open"),
}


class PipelineCollector:
    """Runs `probe()` (api.health.pipeline_health) at scrape time; a failing probe yields
    segbase_pipeline_probe_up 0 instead of failing the whole scrape."""

    def __init__(self, probe: Callable[[], dict[str, Any]]) -> None:
        self.probe = probe

    def collect(self):
        up = GaugeMetricFamily("segbase_pipeline_probe_up", "1 when PostgreSQL and Redis answered the lag probe")
        try:
            values = self.probe()
        except Exception as exc:  # noqa: BLE001 — a scrape reports the failure as a value
            log.warning("pipeline probe failed: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for key, (name, documentation) in PIPELINE_GAUGES.items():
            if values.get(key) is not None:
                yield GaugeMetricFamily(name, documentation, value=float(values[key]))


def process_registry() -> CollectorRegistry:
    """This process tree's samples: the multiprocess files when in multiprocess mode, else the default registry."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def render_metrics(pipeline_probe: Callable[[], dict[str, Any]] | None = None) -> tuple[bytes, str]:
    """The exposition text: aggregated over every process of this tree in multiprocess mode, plus the pipeline
    lag read at scrape time when a probe is given."""
    text_ = generate_latest(process_registry())
    if pipeline_probe is not None:
        extra = CollectorRegistry(auto_describe=False)
        extra.register(PipelineCollector(pipeline_probe))
        text_ += generate_latest(extra)
    return text_, CONTENT_TYPE_LATEST


def start_metrics_server(port: int, process: str, address: str = "127.0.0.1") -> bool:
    """Serve this process tree's metrics on `address:port` (WORKER_METRICS_PORT / RELAY_METRICS_PORT, 0 = off;
    METRICS_BIND_ADDRESS, loopback unless told: the endpoint has no authentication). A port already taken (several
    workers on one host) only logs a warning: metrics must never stop a worker."""
    if not port:
        return False
    try:
        start_http_server(port, addr=address, registry=process_registry())
    except OSError as exc:
        log.warning("%s metrics endpoint not started: %s:%d unavailable (%s)", process, address, port, exc.strerror)
        return False
    log.info("%s metrics on %s:%d/metrics", process, address, port)
    return True


def install_celery_metrics() -> None:
    """Count every Celery task by outcome and time it (Celery signals, so tasks need no code for it), and drop
    the live gauges of prefork children that exit."""
    started: dict[str, float] = {}

    @signals.task_prerun.connect(weak=False)
    def _prerun(task_id=None, **_: Any) -> None:
        started[task_id] = time.perf_counter()

    @signals.task_postrun.connect(weak=False)
    def _postrun(task_id=None, task=None, state=None, **_: Any) -> None:
        began = started.pop(task_id, None)
        name = getattr(task, "name", "unknown")
        TASKS.labels(name, (state or "unknown").lower()).inc()
        if began is not None:
            TASK_DURATION.labels(name).observe(time.perf_counter() - began)

    @signals.worker_process_shutdown.connect(weak=False)
    def _child_exit(pid=None, **_: Any) -> None:
        mark_process_dead(pid or os.getpid())


def mark_process_dead(pid: int) -> None:
    """Drop a dead child's live gauges (gunicorn `child_exit`, Celery worker shutdown)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
