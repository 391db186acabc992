"""Metrics are not for the public: with ENV=prod the processes refuse to start unless /metrics is behind
METRICS_TOKEN (or off), and the worker's and relay's unauthenticated endpoints listen on loopback unless
METRICS_BIND_ADDRESS says otherwise."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from schemas.settings import Settings
from tests.support.database import make_test_settings
from tests.support.processes import ROOT, SegbaseProcess, free_port, wait_for

PROD = {"env": "prod", "jwt_secret": "s" * 40, "db_authenticator_password": "p" * 20, "webhook_api_keys": "k1",
        "auth_site_url": "https://app.example"}


def test_prod_needs_a_metrics_token_or_metrics_off() -> None:
    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        Settings(_env_file=None, **PROD)
    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        Settings(_env_file=None, **PROD, metrics_token="")
    assert Settings(_env_file=None, **PROD, metrics_token="t" * 24).metrics_enabled
    assert not Settings(_env_file=None, **PROD, metrics_enabled=False).metrics_enabled
    assert Settings(_env_file=None).metrics_token is None  # dev: open, as before


def test_a_prod_api_without_a_metrics_token_does_not_start(settings) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGBASE_", "PYTEST_"))}
    env.update(settings.to_env())
    env.update({key.upper(): value for key, value in PROD.items()}, SEGBASE_ENV_FILE="")
    started = subprocess.run([sys.executable, "-m", "segbase", "api", "--port", str(free_port())], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 2 and "METRICS_TOKEN" in started.stderr, started.stderr


def listening_addresses(port: int) -> set[str]:
    """The local addresses listening on `port`, from /proc/net/tcp (IPv4)."""
    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.parametrize("bind, expected", [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")])
def test_the_worker_metrics_endpoint_binds_loopback_unless_told(settings, bind, expected) -> None:
    port = free_port()
    overrides = {"worker_metrics_port": port, **({"metrics_bind_address": bind} if bind else {})}
    # An INSTANCE_ID of its own: this worker consumes nothing the session's workers should get.
    worker_settings = make_test_settings(settings.database_url, f"{settings.instance_id}m", **overrides)
    worker = SegbaseProcess(worker_settings, "worker", "--concurrency", "1", name="metrics-bind").start()
    try:
        wait_for(lambda: "metrics on" in worker.log_text() or not worker.alive(), timeout=90,
                 message="the worker's metrics endpoint")
        assert worker.alive(), worker.log_text()
        assert listening_addresses(port) == {expected}
    finally:
        worker.stop()
