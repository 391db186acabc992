"""No Docker engine runs here, so the compose files are checked by Debian's docker-compose (`config` validates and
interpolates a file without an engine; `make test` installs it) and by reading them: every command exists, every
variable is a documented setting, the required secrets are explained, and the shape an operator relies on holds."""
from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from schemas.settings import Settings, documented_setting_names
from segbase.cli import build_parser
from segbase.devenv import render_compose_env, render_dev_env

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DEV_COMPOSE = yaml.safe_load((ROOT / "docker-compose.dev.yml").read_text())
SEGBASE_SERVICES = ("migrate", "api", "worker", "beat", "relay")
# Variables that configure the containers themselves rather than segbase.
COMPOSE_ONLY_VARIABLES = {"POSTGRES_PASSWORD", "POSTGRES_DB", "API_PUBLISH_PORT", "DEV_POSTGRES_PORT",
                          "DEV_REDIS_PORT"}
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "JWT_SECRET", "DB_AUTHENTICATOR_PASSWORD", "WEBHOOK_API_KEYS",
                    "METRICS_TOKEN")


def compose_config(directory: Path, compose_file: str, *args: str, **variables: str) -> subprocess.CompletedProcess:
    """`docker-compose config` on a copy of the file in `directory` (where a `.env` may sit, as beside the repo's)."""
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: `make compose-tool` installs it (as root), or "
                    "`sudo apt-get install docker-compose`", pytrace=False)
    shutil.copy(ROOT / compose_file, directory / compose_file)
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(directory), **variables}
    return subprocess.run(["docker-compose", "-f", compose_file, *args, "config"], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_compose_file_is_valid_with_the_generated_secrets(tmp_path):
    generated = render_compose_env()
    (tmp_path / "compose.env").write_text(generated)
    done = compose_config(tmp_path, "docker-compose.yml", "--env-file", "compose.env")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert services["api"]["environment"]["ENV"] == "prod"
    password = next(line.split("=", 1)[1] for line in generated.splitlines() if line.startswith("POSTGRES_PASSWORD="))
    assert services["api"]["environment"]["DATABASE_URL"] == f"postgresql://postgres:{password}@postgres:5432/segbase"


def test_a_missing_secret_says_how_to_generate_it(tmp_path):
    done = compose_config(tmp_path, "docker-compose.yml")
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD (make compose.env generates the required secrets)" in done.stderr


def test_a_development_env_file_does_not_make_compose_dev(tmp_path):
    (tmp_path / ".env").write_text(render_dev_env() + "POSTGRES_PASSWORD=dev-password\nMETRICS_TOKEN=dev-metrics\n"
                                   "AUTH_SITE_URL=http://localhost:3000\n"
                                   "LOG_LEVEL=DEBUG\n")
    done = compose_config(tmp_path, "docker-compose.yml")
    assert done.returncode == 0, done.stderr
    for name, service in yaml.safe_load(done.stdout)["services"].items():
        if name in SEGBASE_SERVICES:
            assert service["environment"]["ENV"] == "prod", name


def test_the_development_databases_listen_on_loopback_ports_matching_the_default_urls(tmp_path):
    done = compose_config(tmp_path, "docker-compose.dev.yml")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"postgres", "redis"}
    # docker-compose 1.x prints the short syntax, host_ip:published:target/protocol.
    assert {name: service["ports"] for name, service in services.items()} == {
        "postgres": ["127.0.0.1:5432:5432/tcp"], "redis": ["127.0.0.1:6379:6379/tcp"]}
    assert Settings.model_fields["database_url"].default == "postgresql://postgres@127.0.0.1:5432/segbase"
    assert Settings.model_fields["redis_url"].default == "redis://127.0.0.1:6379/0"
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "segbase"
    moved = compose_config(tmp_path, "docker-compose.dev.yml", DEV_POSTGRES_PORT="15432", DEV_REDIS_PORT="16379")
    assert [service["ports"] for service in yaml.safe_load(moved.stdout)["services"].values()] == \
        [["127.0.0.1:15432:5432/tcp"], ["127.0.0.1:16379:6379/tcp"]]


def test_generated_secrets_are_url_safe_and_accepted_in_prod():
    values = dict(line.split("=", 1) for line in render_compose_env().splitlines() if "=" in line
                  and not line.startswith("#"))
    assert set(REQUIRED_SECRETS) <= set(values)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", values[name]) for name in REQUIRED_SECRETS)
    Settings(_env_file=None, env="prod", jwt_secret=values["JWT_SECRET"],
             db_authenticator_password=values["DB_AUTHENTICATOR_PASSWORD"],
             webhook_api_keys=values["WEBHOOK_API_KEYS"], metrics_token=values["METRICS_TOKEN"],
             auth_site_url=values["AUTH_SITE_URL"])


def test_the_image_context_leaves_out_secrets_and_local_environments():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".env", "compose.env", ".venv", "node_modules", ".git"} <= ignored


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
    for secret in (*REQUIRED_SECRETS, "AUTH_SITE_URL"):
        assert re.search(r"\$\{" + secret + r":\?[^}]*make compose\.env", text), secret


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
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for pattern in packages["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} ./{package}" in dockerfile
