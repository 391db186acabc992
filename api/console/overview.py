"""What the overview shows, read when asked: the durable tables (inbox events per minute, lag, rejected counts, the
dispatch queue), the existing probes (Celery queue depth, a Celery ping of the workers, the relay's lock) and this
host's API processes' realtime gauge. Each part is read on its own, so one unreachable part shows as such and the rest still renders.

History that no table keeps (queue depth, lags) is sampled into a short Redis list at most once a minute while
someone watches the overview; the events-per-minute charts come from the inbox itself and are always complete.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.samples import Sample

from api.console.charts import Point, bar_chart
from api.services import Services
from broker.celery_app import celery_queue_depth
from db import console as console_db
from db.dispatch import dispatch_health
from db.health import pipeline_lag
from db.uow import Caller, unit_of_work
from observability.metrics import process_registry

log = logging.getLogger(__name__)

SAMPLE_MINUTES = 60
WORKER_PING_TIMEOUT_SECONDS = 1.0
WORKER_PING_CACHE_SECONDS = 10.0
SAMPLED = ("queue_depth", "inbox_oldest_unapplied_seconds", "outbox_oldest_unsent_seconds")

_worker_ping: dict[str, tuple[float, int | None]] = {}


@dataclass
class Overview:
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    charts: dict[str, Any] = field(default_factory=dict)


def workers_answering(services: Services) -> int | None:
    """How many Celery workers of this deployment answer a ping (cached briefly: the ping waits for replies)."""
    key = services.settings.instance_id
    cached = _worker_ping.get(key)
    if cached is not None and time.monotonic() - cached[0] < WORKER_PING_CACHE_SECONDS:
        return cached[1]
    try:
        replies = services.celery.control.inspect(timeout=WORKER_PING_TIMEOUT_SECONDS).ping() or {}
        count: int | None = len(replies)
    except Exception as exc:  # noqa: BLE001 — an unreachable broker shows as unknown
        log.warning("worker ping failed: %s", exc.__class__.__name__)
        count = None
    _worker_ping[key] = (time.monotonic(), count)
    return count


def realtime_connections() -> int:
    """Open realtime WebSockets of the API processes on this host (their live gauge, summed)."""
    total = 0.0
    for family in process_registry().collect():
        if family.name == "segbase_websocket_connections":
            total += sum(sample.value for sample in family.samples if isinstance(sample, Sample))
    return int(total)


def _record_sample(services: Services, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Keep one sample per minute (the first request of the minute writes it); return the last hour, oldest first."""
    client = services.redis
    settings = services.settings
    minute = int(time.time() // 60)
    history_key = settings.redis_key("console", "samples")
    if client.set(settings.redis_key("console", "sampled", str(minute)), 1, nx=True, ex=120):
        sample = {"minute": minute, **{name: values.get(name) for name in SAMPLED}}
        pipe = client.pipeline(transaction=True)
        pipe.lpush(history_key, json.dumps(sample))
        pipe.ltrim(history_key, 0, SAMPLE_MINUTES - 1)
        pipe.execute()
    samples = [json.loads(raw) for raw in client.lrange(history_key, 0, SAMPLE_MINUTES - 1)]
    return sorted((s for s in samples if s.get("minute", 0) > minute - SAMPLE_MINUTES), key=lambda s: s["minute"])


def _minute_label(minute: int) -> str:
    return time.strftime("%H:%M", time.gmtime(minute * 60))


def collect_overview(services: Services) -> Overview:
    overview = Overview()
    values = overview.values
    try:
        with unit_of_work(services.engine, Caller.service()) as uow:
            values.update(pipeline_lag(uow))
            values.update({f"events_24h_{k}": v for k, v in console_db.inbox_totals(uow=uow).items()})
            values["relay_active"] = console_db.relay_active(uow=uow)
            values.update(dispatch_health(uow=uow))
            values["dispatch_mode"] = services.settings.dispatch_mode
            per_minute = console_db.events_per_minute(uow=uow, minutes=SAMPLE_MINUTES)
        labels = [row["minute"].strftime("%H:%M") for row in per_minute]
        for series, css in (("received", "received"), ("applied", "applied"), ("rejected", "rejected")):
            points = [Point(label, float(row[series])) for label, row in zip(labels, per_minute)]
            overview.charts[series] = bar_chart(f"Events {series} per minute", points, css_class=css)
            values[f"{series}_last_minute"] = int(per_minute[-1][series]) if per_minute else 0
    except Exception as exc:  # noqa: BLE001 — the page names the unreachable part and shows the rest
        log.warning("console overview: PostgreSQL read failed: %s", exc.__class__.__name__)
        overview.problems.append(f"PostgreSQL unreachable ({exc.__class__.__name__})")
    try:
        values.update(celery_queue_depth(services.settings, services.redis))
        history = _record_sample(services, values)
        for name, label in (("queue_depth", "Celery queue depth"),
                            ("inbox_oldest_unapplied_seconds", "Inbox lag (s)"),
                            ("outbox_oldest_unsent_seconds", "Outbox lag (s)")):
            points = [Point(_minute_label(s["minute"]), float(s.get(name) or 0)) for s in history]
            overview.charts[name] = bar_chart(label, points, css_class="sampled")
    except Exception as exc:  # noqa: BLE001
        log.warning("console overview: Redis read failed: %s", exc.__class__.__name__)
        overview.problems.append(f"Redis unreachable ({exc.__class__.__name__})")
    values["workers"] = workers_answering(services)
    values["realtime_connections"] = realtime_connections()
    return overview
