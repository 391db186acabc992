"""The API's port is checked before anything starts: `make run`'s preflight, `segbase run` and `segbase api` each
stop at once with one line naming the port and the setting, instead of gunicorn's retry loop."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from segbase.ports import port_problem
from tests.first_hour.test_status import segbase
from tests.support.processes import ROOT, free_port


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_free_port_is_no_problem():
    assert port_problem("127.0.0.1", free_port()) is None


def test_a_taken_port_is_named_with_the_setting(taken_port):
    problem = port_problem("127.0.0.1", taken_port)
    assert problem is not None and f"port {taken_port} on 127.0.0.1 is already in use" in problem
    assert "API_PORT" in problem


@pytest.mark.parametrize("command", [("api",), ("run",)])
def test_segbase_stops_before_starting_anything(settings, taken_port, command):
    done = segbase(settings.model_copy(update={"api_port": taken_port}), *command)
    assert done.returncode == 1
    assert f"port {taken_port} on 127.0.0.1 is already in use" in done.stderr
    assert "migrations up to date" not in done.stdout and "Traceback" not in done.stderr


def test_make_runs_preflight_names_the_taken_port(settings, taken_port):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGBASE_", "PYTEST_"))}
    env.update(settings.to_env(), API_PORT=str(taken_port))
    done = subprocess.run([sys.executable, "-m", "segbase.preflight"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and f"port {taken_port}" in done.stderr


def test_the_apis_port_check_does_not_import_psycopg_into_gunicorns_master():
    """psycopg picks how to wait when first imported: in the master, before gevent patches the workers, it would make
    every request block the event loop."""
    probe = ("import sys; from schemas.settings import Settings; from segbase.cli import port_taken; "
             "port_taken(Settings(_env_file=None), 0); print('psycopg' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={key: value for key, value in os.environ.items() if not key.startswith("SEGBASE_")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
