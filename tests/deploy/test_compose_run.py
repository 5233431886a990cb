"""docker-compose.yml run for real with podman-compose (PyPI, 1.6): Redis, the bot and two workers up and
healthy, one signed slash command through the bot, then ``down -v`` leaves no container or volume.

The repository's compose file is used as it is, plus an override file written here for what this
machine cannot give it — each line of the override says why:

- the image: the one ``tests/fixtures/image.py`` built from the Dockerfile (the file's ``build:`` would
  rebuild it without the CA bundle pip needs here), and for ``redis:7.4-alpine`` (Docker Hub is not
  reachable) a local Debian image with redis-server;
- ``network_mode: host`` with ``redis`` resolving to 127.0.0.1: the test may only talk to loopback
  addresses, and the Slack emulator must reach the bot (and the bot the emulator), so the containers use
  the host's network instead of a compose bridge network; ports move to free ones accordingly, and the
  two worker replicas share one metrics port (the second logs that it could not bind it and works on);
- podman's rlimits and runtime come from a ``containers.conf`` given by ``CONTAINERS_CONF`` (podman's
  default RLIMIT_NOFILE is above this machine's hard limit; crun fails here on cgroups v1).

What podman-compose 1.6 with podman 4.3 does not do, and this test therefore does itself: it ignores
``depends_on: condition: service_healthy`` ("podman 4.3.1 doesn't support healthy", it warns) and starts
the services in order; and podman runs HEALTHCHECKs from systemd timers, which this machine has not, so
each container's healthcheck is run with ``podman healthcheck run``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib
import yaml

from persistence.keys import Keys
from persistence.store import IncidentStore
from sandbox.ports import free_port
from sandbox.slack import SlackEmulator
from tests.fixtures.image import RLIMITS, BuiltImage, ensure_redis_image, podman
from tests.fixtures.slack import BOT_TOKEN, SIGNING_SECRET, STAKEHOLDER_CHANNEL, USERS

pytestmark = [pytest.mark.image]

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"


def podman_compose() -> str:
    """podman-compose from the virtualenv (``pip install podman-compose``; bootstrap does it) or PATH."""
    local = Path(sys.executable).parent / "podman-compose"
    found = str(local) if local.exists() else shutil.which("podman-compose")
    if found is None:
        raise AssertionError("podman-compose is missing: run `bash scripts/bootstrap.sh` (it installs it into .venv)")
    return found


def _containers_conf(path: Path) -> Path:
    ulimits = [RLIMITS[i + 1] for i in range(0, len(RLIMITS), 2)]
    path.write_text("[containers]\ndefault_ulimits = [" + ", ".join(f'"{u}"' for u in ulimits) + "]\n"
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n')
    return path


class Compose:
    def __init__(self, project: str, files: list[Path], env: dict[str, str]) -> None:
        self.project, self.files, self.env = project, files, env

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [podman_compose(), "-p", self.project]
        for path in self.files:
            command += ["-f", str(path)]
        result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, env=self.env,
                                cwd=REPO, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"podman-compose {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n{result.stdout}")
        return result

    def containers(self) -> dict[str, dict[str, object]]:
        listed = podman("ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}", "--format", "json").stdout
        return {c["Names"][0]: c for c in json.loads(listed or "[]")}


@pytest.fixture()
def compose_up(bot_image: BuiltImage, redis_server_port: int, tmp_path: Path) -> Iterator[tuple[Compose, SlackEmulator, int]]:
    redis_image = ensure_redis_image(lambda m: print(m, file=sys.stderr, flush=True))
    slack = SlackEmulator(signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN)
    for user_id, name in USERS.items():
        slack.add_user(user_id, name=name)
    slack.add_channel(STAKEHOLDER_CHANNEL, name="stakeholders", members=[slack.bot_user_id])
    slack.start()
    bot_port, worker_port = free_port(), free_port()
    kube_dir = Path(tempfile.mkdtemp(prefix="kib-compose-kube-"))
    kube_dir.chmod(0o755)
    (kube_dir / "config").write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    (kube_dir / "config").chmod(0o644)
    redis_url = f"redis://redis:{redis_server_port}/0"
    app_env = {"REDIS_URL": redis_url, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "SLACK_API_URL": slack.api_url, "STAKEHOLDER_CHANNEL": STAKEHOLDER_CHANNEL, "HTTP_HOST": "127.0.0.1"}
    health = "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{port}/{path}', timeout=2).status == 200 else 1)"
    host = {"network_mode": "host", "extra_hosts": ["redis:127.0.0.1"]}
    override = {"services": {
        "redis": {**host, "image": redis_image,
                  "command": ["redis-server", "--port", str(redis_server_port), "--bind", "127.0.0.1", "--appendonly", "yes",
                              "--appendfsync", "everysec", "--save", "", "--dir", "/data"],
                  "healthcheck": {"test": ["CMD", "redis-cli", "-p", str(redis_server_port), "ping"]}},
        "bot": {**host, "image": bot_image.tag, "ports": [],
                "environment": {**app_env, "HTTP_PORT": str(bot_port)},
                "healthcheck": {"test": ["CMD", "python", "-c", health.format(port=bot_port, path="healthz")]}},
        "worker": {**host, "image": bot_image.tag,
                   "environment": {**app_env, "HTTP_PORT": str(worker_port)},
                   "healthcheck": {"test": ["CMD", "python", "-c", health.format(port=worker_port, path="metrics")]}},
    }}
    text = yaml.safe_dump(override, sort_keys=False)
    # Compose merges lists by appending; !override / !reset replace them (the spec's merge tags).
    for key in ("command", "test", "ports", "extra_hosts"):
        text = text.replace(f"{key}:\n", f"{key}: !override\n").replace(f"{key}: []", f"{key}: !reset []")
    (tmp_path / "override.yml").write_text(text)
    env = {**os.environ, "CONTAINERS_CONF": str(_containers_conf(tmp_path / "containers.conf")),
           "KUBECONFIG_FILE": str(kube_dir / "config")}
    project = f"kibtest{os.getpid()}"
    compose = Compose(project, [COMPOSE, tmp_path / "override.yml"], env)
    try:
        started = time.monotonic()
        result = compose("up", "-d")
        print(f"\n[compose] up -d in {time.monotonic() - started:.1f} s\n{result.stderr[-1500:]}", file=sys.stderr)
        slack.request_url = f"http://127.0.0.1:{bot_port}/slack/events"
        yield compose, slack, redis_server_port
    finally:
        for name in compose.containers():
            print(f"--- {name}\n" + "\n".join(podman("logs", name, check=False).stderr.splitlines()[-8:]), file=sys.stderr)
        compose("down", "-v", "-t", "10", check=False)
        slack.stop()
        shutil.rmtree(kube_dir, ignore_errors=True)


@pytest.fixture()
def redis_server_port() -> int:
    return free_port()


def test_compose_file_runs_with_podman_compose(compose_up: tuple[Compose, SlackEmulator, int]) -> None:
    compose, slack, redis_port = compose_up
    project = compose.project
    names = set(compose.containers())
    assert names == {f"{project}_redis_1", f"{project}_bot_1", f"{project}_worker_1", f"{project}_worker_2"}, names

    def healthy(name: str) -> bool:
        return podman("healthcheck", "run", name, check=False, timeout=60).returncode == 0

    deadline = time.monotonic() + 90
    pending = sorted(names)
    while pending and time.monotonic() < deadline:
        pending = [name for name in pending if not healthy(name)]
        if pending:
            time.sleep(1)
    assert not pending, f"not healthy within 90 s: {pending}"
    for name in names:
        inspect = json.loads(podman("inspect", name).stdout)[0]
        assert inspect["State"]["Running"] is True
        if "redis" not in name:
            assert inspect["Config"]["User"] == "10001:10001"
            assert inspect["HostConfig"]["ReadonlyRootfs"] is True
            # cap_drop: [ALL] — podman lists every dropped capability and leaves none in the bounding set.
            assert not inspect.get("BoundingCaps") and "CAP_NET_RAW" in inspect["HostConfig"]["CapDrop"], (
                inspect.get("BoundingCaps"), inspect["HostConfig"]["CapDrop"])

    client = redis_lib.Redis(port=redis_port)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    from rq import Worker
    assert len(Worker.all(connection=client)) == 2, "both worker replicas registered with RQ"

    response = slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev3 Compose smoke test")
    assert response.status == 200
    store = IncidentStore(client, Keys())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not [i for i in store.iter_all() if i.stakeholder_ts]:
        time.sleep(0.2)
    (incident,) = [i for i in store.iter_all() if i.stakeholder_ts]
    assert incident.channel_id in slack.channels and incident.channel_name.endswith("-compose-smoke-test")

    compose("down", "-v", "-t", "10")
    assert not compose.containers()
    volumes = podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert not [v for v in volumes if v.startswith(project)], volumes
