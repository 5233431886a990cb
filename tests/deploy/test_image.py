"""The container image as users get it: built with podman from the real Dockerfile, then run.

The image is built once per content (see ``tests/fixtures/image.py``: an mmdebstrap bookworm base, the
host's CA bundle mounted for the build only) and its build time and size are printed. Then a ``serve``
and a ``worker`` container run with the production isolation (read-only root, uid 10001, no
capabilities) on the host network against a real Redis, the Slack emulator and the test-bed
apiserver: health endpoints, the image's HEALTHCHECK, a signed ``/k8s incident open`` that creates the
channel, an assessment that the worker container runs, and SIGTERM → a clean exit inside the grace period.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from persistence.keys import Keys
from persistence.store import IncidentStore
from sandbox.cluster import LocalCluster
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator
from tests.fixtures.image import BuiltImage, Container, podman, run_once
from tests.fixtures.slack import BOT_TOKEN, RESPONDER_GROUP, SIGNING_SECRET, STAKEHOLDER_CHANNEL, USERS
from sandbox.waiting import poll

pytestmark = [pytest.mark.cluster, pytest.mark.image]

SIZE_AIM_MB = 200
SIZE_LIMIT_MB = 210
"""Fails above this (Debian updates move the base by a few MB); the aim, printed beside the size, is 200 MB."""

GRACE_SECONDS = 30
"""Kubernetes' default terminationGracePeriodSeconds (the bot's Deployment keeps it)."""


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):  # type: ignore[no-untyped-def]
    return poll(condition, timeout, what, interval=interval)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


# -- the image itself -----------------------------------------------------------------------------------

def test_image_builds_and_reports_its_build_time_and_size(bot_image: BuiltImage) -> None:
    size_mb = bot_image.size_bytes / 1e6
    print(f"\n[image] {bot_image.describe()} (aim < {SIZE_AIM_MB} MB)")
    assert size_mb < SIZE_LIMIT_MB, f"image is {size_mb:.0f} MB"
    config = bot_image.inspect["Config"]
    assert config["User"] == "10001:10001"  # type: ignore[index]
    assert config["Entrypoint"] == ["k8s-incident-bot"] and config["Cmd"] == ["serve"]  # type: ignore[index]
    health = bot_image.inspect.get("Healthcheck")  # top level in podman's inspect (Docker format only)
    assert health and "/healthz" in " ".join(health["Test"]), health


def test_image_runs_as_uid_10001_on_a_read_only_root(bot_image: BuiltImage) -> None:
    result = run_once(bot_image.tag, "-c", "id -u; id -g; touch /app/x 2>&1; touch /tmp/ok && echo tmp-writable",
                      entrypoint="/bin/sh")
    lines = result.stdout.splitlines()
    assert lines[:2] == ["10001", "10001"], result.stdout + result.stderr
    assert "Read-only file system" in result.stdout, result.stdout
    assert "tmp-writable" in result.stdout


def test_image_holds_no_compiler_no_pip_and_no_sandbox(bot_image: BuiltImage) -> None:
    probe = ("import importlib.util, shutil, os, sys\n"
             "print(sorted(t for t in ('gcc', 'cc', 'c++', 'g++', 'make', 'ld', 'go', 'pip', 'pip3') if shutil.which(t)))\n"
             "print(importlib.util.find_spec('sandbox'))\n"
             "print(sorted(os.listdir('/app')))\n"
             "print(importlib.util.find_spec('pip'))\n"
             "import bot.server, workers.run, kube.assessor\n"
             "print('imports ok')\n")
    result = run_once(bot_image.tag, "-c", probe, entrypoint="python")
    assert result.returncode == 0, result.stderr
    tools, sandbox, app, pip, ok = result.stdout.splitlines()
    assert tools == "[]", f"build tools in the runtime image: {tools}"
    assert sandbox == "None" and "'sandbox'" not in app and "'tests'" not in app, app
    assert pip == "None"
    assert ok == "imports ok"


def test_cli_in_the_image_answers_help_and_says_where_the_demo_runs(bot_image: BuiltImage) -> None:
    assert run_once(bot_image.tag, "--help").returncode == 0
    demo = run_once(bot_image.tag, "demo")
    assert demo.returncode == 1
    assert "the demo runs from a source checkout (`make demo`)" in demo.stderr, demo.stderr


# -- the running containers -----------------------------------------------------------------------------

@dataclass
class Stack:
    image: BuiltImage
    slack: SlackEmulator
    redis_url: str
    bot: Container
    worker: Container
    bot_url: str
    worker_url: str


@pytest.fixture(scope="module")
def stack(bot_image: BuiltImage, redis_server: RedisServer, k8s_cluster: LocalCluster) -> Iterator[Stack]:
    """serve + worker containers wired to a fresh emulator, the session Redis and the test-bed apiserver."""
    redis.Redis.from_url(redis_server.url).flushall()
    emulator = SlackEmulator(signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN)
    for user_id, name in USERS.items():
        emulator.add_user(user_id, name=name)
    emulator.add_channel(STAKEHOLDER_CHANNEL, name="stakeholders", members=[emulator.bot_user_id, "U_DAVE"])
    emulator.add_usergroup(RESPONDER_GROUP, handle="responders", users=["U_BOB", "U_CAROL"])
    emulator.start()
    # uid 10001 must be able to read the kubeconfig: a world-readable copy in a world-traversable dir.
    kube_dir = Path(tempfile.mkdtemp(prefix="kib-image-kube-"))
    kube_dir.chmod(0o755)
    shutil.copy(k8s_cluster.kubeconfig, kube_dir / "config")
    (kube_dir / "config").chmod(0o644)
    bot_port, worker_port = free_port(), free_port()
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": emulator.api_url,
        "STAKEHOLDER_CHANNEL": STAKEHOLDER_CHANNEL, "RESPONDER_USERGROUP": RESPONDER_GROUP,
        "REDIS_URL": redis_server.url, "KUBECONFIG": "/kube/config", "CLUSTER_NAME": "sandbox",
        "ACTION_ALLOWED_USERS": "U_ALICE,U_BOB", "HTTP_HOST": "127.0.0.1",
    }
    volume = f"{kube_dir}:/kube:ro"
    bot = Container(bot_image.tag, ["serve"], {**env, "HTTP_PORT": str(bot_port)}, name_hint="serve", volumes=[volume])
    worker = Container(bot_image.tag, ["worker"], {**env, "HTTP_PORT": str(worker_port)}, name_hint="worker",
                       volumes=[volume])
    running = Stack(bot_image, emulator, redis_server.url, bot, worker, f"http://127.0.0.1:{bot_port}",
                    f"http://127.0.0.1:{worker_port}")
    try:
        bot.start()
        worker.start()
        emulator.request_url = f"{running.bot_url}/slack/events"
        started = time.monotonic()
        wait_until(lambda: http_get(f"{running.bot_url}/healthz")[0] == 200, 60, f"serve /healthz\n{bot.logs()}")
        wait_until(lambda: http_get(f"{running.worker_url}/metrics")[0] == 200, 60, f"worker /metrics\n{worker.logs()}")
        print(f"\n[image] serve and worker containers answering after {time.monotonic() - started:.1f} s",
              file=sys.stderr)
        yield running
    finally:
        for container in (bot, worker):
            if container.started:
                print(f"--- {container.name} logs (tail)\n" + "\n".join(container.logs().splitlines()[-15:]),
                      file=sys.stderr)
            container.remove()
        emulator.stop()
        shutil.rmtree(kube_dir, ignore_errors=True)


def test_serve_container_answers_health_readiness_and_metrics(stack: Stack) -> None:
    assert http_get(f"{stack.bot_url}/healthz")[0] == 200
    status, body = wait_until(lambda: (r := http_get(f"{stack.bot_url}/readyz"))[0] == 200 and r, 30,
                              "serve /readyz (Redis and the Kubernetes API through the container)")
    assert status == 200, body
    status, metrics = http_get(f"{stack.bot_url}/metrics")
    assert status == 200 and "k8s_incident_bot_" in metrics
    # The worker's multiprocess registry is empty until a job ran; the assessment test checks its samples.
    assert http_get(f"{stack.worker_url}/metrics")[0] == 200


def test_the_images_healthcheck_passes_in_the_running_container(stack: Stack) -> None:
    result = stack.bot.healthcheck()
    assert result.returncode == 0 and "unhealthy" not in result.stdout, result.stdout + result.stderr
    state = stack.bot.state()
    assert state["Running"] is True


def test_signed_slash_command_opens_an_incident_and_the_worker_container_assesses(stack: Stack) -> None:
    slack = stack.slack
    response = slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 Checkout errors")
    assert response.status == 200, response
    store = IncidentStore(redis.Redis.from_url(stack.redis_url), Keys())

    def opened():  # type: ignore[no-untyped-def]
        incidents = [i for i in store.iter_all() if i.stakeholder_ts]
        return incidents[-1] if incidents else None

    incident = wait_until(opened, 30, f"incident set-up through the container\n{stack.bot.logs()}")
    assert incident.channel_name.endswith("-checkout-errors")
    assert incident.channel_id in slack.channels
    assert {"U_ALICE", "U_BOB", "U_CAROL"} <= set(slack.channels[incident.channel_id].members)

    slack.slash_command("U_ALICE", incident.channel_id, "assess")
    entries = wait_until(lambda: store.timeline(incident.id).entries({"assessment"}), 120,
                         f"assessment by the worker container\n{stack.worker.logs()}")
    verdict = entries[0].data["verdict"]
    assert verdict, entries[0].data
    texts = [json.dumps(m) for m in slack.messages(incident.channel_id)]
    assert any("checks in" in text for text in texts), texts[-3:]
    status, worker_metrics = wait_until(
        lambda: (r := http_get(f"{stack.worker_url}/metrics"))[1].count("k8s_incident_bot_job_duration_seconds") and r,
        15, "the worker container's job metrics")
    assert 'kind="assess"' in worker_metrics


def test_sigterm_stops_both_containers_cleanly_inside_the_grace_period(stack: Stack) -> None:
    for container in (stack.bot, stack.worker):
        code, seconds = container.stop(GRACE_SECONDS)
        print(f"\n[image] {container.args[0]}: exit {code} {seconds:.1f} s after SIGTERM", file=sys.stderr)
        assert code == 0, f"{container.args[0]} exited {code}\n{container.logs()[-3000:]}"
        assert seconds < GRACE_SECONDS, f"{container.args[0]} needed {seconds:.1f} s (SIGKILL at {GRACE_SECONDS} s)"


def test_podman_reports_the_containers_as_gone_after_stop(stack: Stack) -> None:
    for container in (stack.bot, stack.worker):
        state = json.loads(podman("inspect", "--format", "{{json .State}}", container.name).stdout)
        assert state["Status"] == "exited" and state["OOMKilled"] is False


def test_the_hosts_ca_bundle_used_by_the_build_is_not_in_the_image(bot_image: BuiltImage) -> None:
    """pip in the build trusts this machine's CA bundle through a read-only build mount; the image must
    keep the base's own bundle (Debian's ca-certificates), byte for byte."""
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    in_image = run_once(bot_image.tag, bundle, entrypoint="cat").stdout
    in_base = run_once(bot_image.base, bundle, entrypoint="cat").stdout
    assert in_image and in_image == in_base
    host = Path(bundle).read_text()
    if host != in_base:  # on a machine whose bundle is Debian's own there is nothing to tell apart
        assert in_image != host
