"""The test suite runs against the servers DATABASE_URL and REDIS_URL name (as `segbase` does), not a hard-coded
127.0.0.1: a developer whose PostgreSQL or Redis lives elsewhere runs `make test` with the same two variables."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.processes import ROOT

PROBE = """
import json, uuid
from tests.support import database
name = "segbase_t_probe_" + uuid.uuid4().hex[:8]
created = database.create_database(name)
database.drop_database(name)
print(json.dumps({"admin": database.PG_ADMIN_URL, "created": created,
                  "test_redis": database.make_test_settings(created, "tprobe").redis_url,
                  "fault_redis": database.redis_url(9)}))
"""


def probe(**env: str) -> dict:
    clean = {key: value for key, value in os.environ.items()
             if key not in ("DATABASE_URL", "REDIS_URL") and not key.startswith(("SEGBASE_", "PYTEST_"))}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_without_the_variables_the_defaults_are_settings_own():
    urls = probe()
    assert urls["admin"] == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert urls["test_redis"] == "redis://127.0.0.1:6379/1" and urls["fault_redis"] == "redis://127.0.0.1:6379/9"


def test_the_servers_of_database_url_and_redis_url_are_used():
    # `localhost` instead of 127.0.0.1 and an explicit option prove the URL is taken apart, not ignored.
    urls = probe(DATABASE_URL="postgresql://postgres@localhost:5432/segbase?connect_timeout=5",
                 REDIS_URL="redis://localhost:6379/0")
    assert urls["admin"] == "postgresql://postgres@localhost:5432/postgres?connect_timeout=5"
    assert urls["created"].startswith("postgresql://postgres@localhost:5432/segbase_t_probe_")
    assert urls["test_redis"] == "redis://localhost:6379/1" and urls["fault_redis"] == "redis://localhost:6379/9"
