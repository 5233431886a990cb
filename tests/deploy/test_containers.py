"""The Dockerfile, .dockerignore, docker-compose.yml and the env file example.

No Docker engine runs here (`docker compose` is not installed), so docker-compose.yml is validated
against the Compose Specification's JSON schema (tests/deploy/compose-spec.json, from
compose-spec/compose-spec, Apache-2.0) plus the structure this project relies on; `docker compose config`
is also run when a compose client happens to be available.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from incident.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "env.example"
DOCKERFILE = REPO / "Dockerfile"
SECRET_SETTINGS = {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "PAGERDUTY_ROUTING_KEY"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_satisfies_the_compose_specification_schema(compose: dict[str, Any]) -> None:
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_compose_config_when_a_compose_client_exists(tmp_path: Path) -> None:
    candidates = [["docker", "compose"], ["docker-compose"]]
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            continue
        result = subprocess.run([*command, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True,
                                check=False, cwd=REPO, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        return
    pytest.skip("no docker compose client on this machine; the schema test above covers the file")


def test_redis_keeps_an_append_only_file_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume, target = redis["volumes"][0].split(":")
    assert target == "/data" and volume in compose["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_bot_socket_mode_and_workers_share_the_image_and_wait_for_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["bot"]["command"] == ["serve"] and "profiles" not in services["bot"]
    assert services["bot-socket"]["command"] == ["socket"] and services["bot-socket"]["profiles"] == ["socket"]
    assert services["worker"]["command"] == ["worker"] and services["worker"]["deploy"]["replicas"] >= 1
    images = {services[name]["image"] for name in ("bot", "bot-socket", "worker")}
    assert len(images) == 1
    for name in ("bot", "bot-socket", "worker"):
        service = services[name]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert "healthz" in " ".join(service["healthcheck"]["test"]) or "metrics" in " ".join(service["healthcheck"]["test"])
        assert service["env_file"] == [{"path": ".env", "required": False}]
    assert "/healthz" in " ".join(services["bot"]["healthcheck"]["test"])


def _env_example() -> dict[str, str]:
    """NAME → example value for every ``NAME=…`` or ``# NAME=…`` line."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_env_example_lists_every_setting_with_a_comment() -> None:
    example = _env_example()
    expected = {name.upper() for name in Settings.model_fields}
    missing = sorted(expected - set(example))
    assert not missing, f"add these settings to deploy/env.example (with a comment line above): {missing}"
    assert not sorted(set(example) - expected), "deploy/env.example names settings that do not exist"
    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=.*", line.strip())
        if match:
            assert lines[index - 1].startswith("# ") and "=" not in lines[index - 1].split(" ", 2)[1], (
                f"{match.group(1)} needs a comment line above it")


def test_env_example_sets_no_secret_and_its_values_load() -> None:
    example = _env_example()
    active = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            active[name] = value
    assert not SECRET_SETTINGS & set(active), "secrets must stay commented out in the example"
    assert set(example) >= SECRET_SETTINGS
    settings = Settings(_env_file=None, **{name.lower(): value for name, value in active.items()})  # type: ignore[arg-type]
    assert settings.http_port == 3000 and settings.kube_in_cluster is False


def test_dockerfile_is_multi_stage_slim_non_root_with_one_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.M)
    assert len(stages) >= 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, flags=re.M)
    assert re.findall(r"^USER (\S+)$", text, flags=re.M)[-1] not in ("root", "0", "0:0")
    assert re.search(r'^ENTRYPOINT \["k8s-incident-bot"\]$', text, flags=re.M)
    healthcheck = text[text.index("HEALTHCHECK"):].split("\n\n")[0]
    assert "/healthz" in healthcheck


def test_dockerfile_copies_every_package_and_the_templates_and_dockerignore_keeps_them() -> None:
    text = DOCKERFILE.read_text()
    copied = set(re.findall(r"^COPY (\S+) \./\S+$", text, flags=re.M))
    import tomllib

    packages = {include.rstrip("*") for include in
                tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]}
    runtime_packages = packages - {"sandbox"}  # the local test bed is not part of the image
    assert runtime_packages <= copied, f"not copied into the image: {sorted(runtime_packages - copied)}"
    assert "templates" in copied
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not (copied | {"pyproject.toml", "README.md"}) & ignored
    assert {".git", ".venv", ".env", "tests"} <= ignored


def test_runtime_code_does_not_import_the_sandbox() -> None:
    """The image leaves sandbox/ out; only lazily-imported CLI subcommands may use it."""
    offenders = []
    for package in ("bot", "chat", "incident", "kube", "workers"):
        for path in (REPO / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.match(r"^(from|import) sandbox\b", line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}")
    assert not offenders, offenders
