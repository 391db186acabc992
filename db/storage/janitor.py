"""The blob ledgers (internal.storage_upload_intents, internal.storage_garbage) and the janitor that empties them.

An upload announces its blob (an intent, committed before the first byte) and the object row claims it when it
commits (a trigger). Whatever deletes a row or replaces its blob queues the old blob as garbage (triggers). The
janitor, run by beat every STORAGE_JANITOR_INTERVAL_SECONDS, removes queued garbage, abandons intents older than
STORAGE_UPLOAD_TIMEOUT_SECONDS (a crashed or stalled upload; the trigger then refuses its late row) and lets the
backend drop half-written leftovers. Bytes go only after the row pointing at them is gone, and deleting a blob twice
is harmless, so a janitor crash at any point just leaves work for the next run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from db.storage.backends import BlobBackend
from db.uow import Caller, UnitOfWork, unit_of_work

log = logging.getLogger("segbase.storage.janitor")


@dataclass
class JanitorCounts:
    garbage: int = 0
    abandoned: int = 0
    stale_writes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"garbage": self.garbage, "abandoned": self.abandoned, "stale_writes": self.stale_writes}


def record_intent(uow: UnitOfWork, *, version: str, bucket_id: str) -> None:
    """In `uow` (as the service): blob `version` is about to be written. Committed before the blob's first byte,
    so its leftovers can always be found."""
    uow.driver_cursor().execute(  # the driver's cursor: it can go in a pipelined unit of work
        "insert into internal.storage_upload_intents (version, bucket_id) values (%(version)s, %(bucket)s)",
        {"version": version, "bucket": bucket_id})


def announce_upload(engine: Engine, *, version: str, bucket_id: str) -> None:
    """record_intent in a transaction of its own."""
    with unit_of_work(engine, Caller.service()) as uow:
        record_intent(uow, version=version, bucket_id=bucket_id)


def forget_upload(engine: Engine, backend: BlobBackend, version: str) -> None:
    """A failed upload: remove its blob, then its intent (best effort: the janitor finishes what fails here)."""
    try:
        backend.delete(version)
        with unit_of_work(engine, Caller.service()) as uow:
            uow.execute("delete from internal.storage_upload_intents where version = :version", {"version": version})
    except Exception:  # the request already failed for its own reason; the intent stays for the janitor
        log.warning("could not remove the blob of failed upload %s; the janitor will", version, exc_info=True)


def purge_garbage(engine: Engine, backend: BlobBackend, versions: list[str]) -> int:
    """Remove these queued blobs now (after the commit that queued them), instead of at the next janitor run."""
    if not versions:
        return 0
    with unit_of_work(engine, Caller.service()) as uow:
        rows = uow.execute("select id, version from internal.storage_garbage where version = any(:versions) "
                           "for update skip locked", {"versions": versions}).all()
        _delete_blobs(backend, [row.version for row in rows])
        _delete_garbage_rows(uow, [row.id for row in rows])
    return len(rows)


def _delete_blobs(backend: BlobBackend, versions: list[str]) -> None:
    for version in versions:
        try:
            backend.delete(version)
        except ValueError:  # not a UUID: a row written by hand, never a blob of ours
            log.warning("garbage version %r is not a blob name; dropped from the queue", version)


def _delete_garbage_rows(uow: UnitOfWork, ids: list[int]) -> None:
    if ids:
        uow.execute("delete from internal.storage_garbage where id = any(:ids)", {"ids": ids})


def collect_garbage(engine: Engine, backend: BlobBackend, batch_size: int = 500) -> int:
    """Remove every queued blob, `batch_size` per transaction (rows locked while their blobs go, so two janitors
    share the queue)."""
    removed = 0
    while True:
        with unit_of_work(engine, Caller.service()) as uow:
            rows = uow.execute("select id, version from internal.storage_garbage order by id limit :batch "
                               "for update skip locked", {"batch": batch_size}).all()
            _delete_blobs(backend, [row.version for row in rows])
            _delete_garbage_rows(uow, [row.id for row in rows])
        removed += len(rows)
        if len(rows) < batch_size:
            return removed


def abandon_stale_uploads(engine: Engine, backend: BlobBackend, older_than_seconds: float,
                          batch_size: int = 500) -> int:
    """Intents older than the upload timeout belong to uploads that died or stalled: mark them abandoned (their
    late rows are then refused), remove their blobs, then the intents."""
    abandoned = 0
    while True:
        with unit_of_work(engine, Caller.service()) as uow:
            versions = list(uow.execute(
                "update internal.storage_upload_intents set state = 'abandoned' where version in ("
                " select version from internal.storage_upload_intents"
                " where state = 'writing' and created_at < now() - make_interval(secs => :age)"
                " order by created_at limit :batch for update skip locked) returning version",
                {"age": older_than_seconds, "batch": batch_size}).scalars())
        _delete_blobs(backend, versions)
        with unit_of_work(engine, Caller.service()) as uow:
            if versions:
                uow.execute("delete from internal.storage_upload_intents where version = any(:versions)",
                            {"versions": versions})
            # abandoned earlier by a janitor that died before finishing
            leftovers = list(uow.execute(
                "select version from internal.storage_upload_intents where state = 'abandoned' "
                "and created_at < now() - make_interval(secs => :age) limit :batch for update skip locked",
                {"age": older_than_seconds, "batch": batch_size}).scalars())
            _delete_blobs(backend, leftovers)
            if leftovers:
                uow.execute("delete from internal.storage_upload_intents where version = any(:versions)",
                            {"versions": leftovers})
        abandoned += len(versions)
        if len(versions) < batch_size:
            return abandoned


def run_janitor(engine: Engine, backend: BlobBackend, *, upload_timeout_seconds: float) -> JanitorCounts:
    counts = JanitorCounts()
    counts.garbage = collect_garbage(engine, backend)
    counts.abandoned = abandon_stale_uploads(engine, backend, upload_timeout_seconds)
    counts.stale_writes = backend.abandon_stale_writes(upload_timeout_seconds)
    return counts
