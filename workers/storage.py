"""The storage janitor, sent by beat every STORAGE_JANITOR_INTERVAL_SECONDS: removes the bytes of deleted and
replaced objects (whatever deleted them: the API, a deleted result's or user's cascade, the cleanup job, SQL) and
of uploads that died. A thin task over db/storage/janitor.py; two runs at once share the queue (SKIP LOCKED)."""
from __future__ import annotations

import logging
import os
from typing import Any

from celery import shared_task

from broker.tasks import STORAGE_JANITOR_TASK
from db.engine import process_engine
from db.storage.backends import BlobBackend, create_backend
from db.storage.janitor import run_janitor
from schemas.settings import Settings

log = logging.getLogger("segbase.storage")

_backends: dict[int, BlobBackend] = {}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {"storage-janitor": {"task": STORAGE_JANITOR_TASK,
                                "schedule": float(settings.storage_janitor_interval_seconds),
                                "options": {"expires": float(settings.storage_janitor_interval_seconds)}}}


def _backend(settings: Settings) -> BlobBackend:
    """One backend per (prefork) process, built after the fork (an S3 client must not cross it)."""
    backend = _backends.get(os.getpid())
    if backend is None:
        backend = _backends[os.getpid()] = create_backend(settings)
    return backend


@shared_task(name=STORAGE_JANITOR_TASK, bind=True)
def storage_janitor(self) -> dict[str, int]:
    settings: Settings = self.app.conf.segbase_settings
    engine = process_engine(settings, application_name="segbase-storage-janitor")
    counts = run_janitor(engine, _backend(settings), upload_timeout_seconds=settings.storage_upload_timeout_seconds)
    if any(counts.as_dict().values()):
        log.info("storage janitor: %s", counts.as_dict())
    return counts.as_dict()
