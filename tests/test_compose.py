"""No Docker engine runs here, so docker-compose.yml is checked by reading it: every command it runs exists,
every variable it reads is a documented setting, and the shape an operator relies on holds."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from schemas.settings import documented_setting_names
from segbase.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SEGBASE_SERVICES = ("migrate", "api", "worker", "beat", "relay")
# Variables that configure the containers themselves rather than segbase.
COMPOSE_ONLY_VARIABLES = {"POSTGRES_PASSWORD", "POSTGRES_DB", "API_PUBLISH_PORT"}


def cli_subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def test_every_service_is_there():
    assert set(SERVICES) >= {"postgres", "redis", *SEGBASE_SERVICES}
    assert SERVICES["postgres"]["image"].startswith("postgres:15")
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert "--appendonly" in SERVICES["redis"]["command"] and "yes" in SERVICES["redis"]["command"]


def test_every_command_exists_in_the_cli():
    commands = cli_subcommands()
    for name in SEGBASE_SERVICES:
        assert SERVICES[name]["command"][0] in commands, name
        health = SERVICES[name].get("healthcheck", {}).get("test", [])
        if "segbase" in health:
            assert health[health.index("segbase") + 1] in commands


def test_every_variable_is_a_documented_setting():
    text = (ROOT / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    environment_keys = set()
    for name in SEGBASE_SERVICES:
        environment_keys |= set(SERVICES[name]["environment"])
    documented = documented_setting_names()
    assert not (environment_keys - documented), environment_keys - documented
    assert not (referenced - documented - COMPOSE_ONLY_VARIABLES), referenced - documented - COMPOSE_ONLY_VARIABLES


def test_required_secrets_fail_loudly_when_unset():
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("POSTGRES_PASSWORD", "JWT_SECRET", "DB_AUTHENTICATOR_PASSWORD", "WEBHOOK_API_KEYS",
                   "AUTH_SITE_URL"):
        assert re.search(r"\$\{" + secret + r":\?", text), secret


def test_databases_are_not_published_and_start_order_uses_health():
    assert "ports" not in SERVICES["postgres"] and "ports" not in SERVICES["redis"]
    for name in ("postgres", "redis", "api"):
        assert "healthcheck" in SERVICES[name], name
    for name in ("api", "worker", "beat", "relay"):
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_worker_scales_without_fixed_names_or_ports():
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker


def test_dockerfile_copies_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("segbase", "api", "workers", "db", "schemas"):
        assert f"COPY {package} ./{package}" in dockerfile
