"""Choose prometheus-client's multiprocess directory. Kept apart from observability.metrics because prometheus-client
decides between single- and multi-process mode when it is first imported: this must run before that."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(process: str, instance_id: str) -> Path:
    """Create a fresh per-process-tree metrics directory and point prometheus-client at it."""
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        return Path(existing)
    path = Path(tempfile.gettempdir()) / f"segbase-metrics-{instance_id}-{process}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


