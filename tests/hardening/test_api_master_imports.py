"""`segbase api` checks its port and the authenticator login before gunicorn starts, in the master process, which
must never import psycopg: psycopg picks how to wait for the server at import, and picked before gevent patches
the workers it blocks their event loop — every request touching PostgreSQL then hangs. (It happened twice.)"""
from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT

PROBE = """
import sys
from schemas.settings import Settings
from segbase import cli
settings = Settings(_env_file=None)
cli.port_taken(settings, 0)
cli.authenticator_login_refused(settings, in_child=True)
import segbase.server
print(sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "sqlalchemy", "gevent")))
"""


def test_the_api_master_imports_no_database_driver_before_gunicorn_forks() -> None:
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={"PATH": "/usr/bin:/bin", "SEGBASE_ENV_FILE": ""})
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]", probe.stdout
