"""Structured (JSON-lines) logging, configured by each entry point — never at import time."""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Celery's line per task received and per task succeeded, and beat's line per task sent, repeat every few seconds on
# an idle stack (the sweeper and reconciliation are periodic). segbase's tasks log what they changed themselves, and
# Celery's failures are errors, so these are kept for LOG_LEVEL=DEBUG only.
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat")
# httpx logs every request's full URL at INFO (httpcore at DEBUG); a job's signed URLs carry their tokens in the
# query string, and signed URLs must never reach a log, whatever LOG_LEVEL.
URL_LOGGERS = ("httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    per_task = logging.DEBUG if root.level <= logging.DEBUG else max(root.level, logging.WARNING)
    for name in PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(per_task)
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
