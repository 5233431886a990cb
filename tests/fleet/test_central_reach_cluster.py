"""A central cluster whose apiserver stops answering: the central workers' probes notice, the bot answers at once.

``far`` is the session cluster reached through the fault proxy (its kubeconfig names the proxy); ``hub`` is the
same cluster reached directly. The central worker probes both every second. When the proxy refuses
connections, ``/k8s clusters`` says why ``far`` is not reachable, and an assessment for it is refused at once
with that reason instead of being queued for a worker that would time out; when the proxy heals, the same
request is queued and answered as usual.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from incident.settings import Settings
from sandbox.cluster import LocalCluster
from sandbox.proxy import FaultProxy
from sandbox.slack import SlackEmulator
from service import reach
from tests.bot.helpers import ephemeral_texts, wait_until
from tests.fixtures.slack import RunningBot
from tests.fixtures.workers import WorkerProcesses
from tests.fleet.test_binding_e2e import command, queued

pytestmark = pytest.mark.cluster


@pytest.fixture()
def proxy(apiserver_proxy: FaultProxy) -> FaultProxy:
    return apiserver_proxy


@pytest.fixture()
def clusters_file(tmp_path: Path, kubeconfig: Path, k8s_cluster: LocalCluster, proxy: FaultProxy) -> Path:
    """``hub``, the session cluster reached directly, and ``far``, the same one through the proxy."""
    proxied = k8s_cluster.write_kubeconfig(tmp_path / "proxied.kubeconfig", server=proxy.url)
    registry = {"default": "hub", "clusters": [{"name": "hub", "kubeconfig": str(kubeconfig)},
                                               {"name": "far", "kubeconfig": str(proxied)}]}
    path = tmp_path / "clusters.yaml"
    path.write_text(yaml.safe_dump(registry))
    return path


@pytest.fixture()
def bot_settings(bot_settings: Settings) -> Settings:
    return bot_settings.model_copy(update={"cluster_probe_seconds": 1})


def _probe(bot: RunningBot, name: str) -> reach.Reach | None:
    return reach.last_probe(bot.services, name)


def test_an_unreachable_central_cluster_is_answered_at_once(slack: SlackEmulator, bot_server: RunningBot,
                                                            workers: WorkerProcesses, proxy: FaultProxy) -> None:
    workers.start()
    wait_until(lambda: all((p := _probe(bot_server, n)) is not None and p.reachable for n in ("hub", "far")), timeout=60)
    listing = command(slack, "U_ALICE", "C_GENERAL", "clusters")
    assert "*far* · central · apiserver answered" in listing and "probe each central cluster's apiserver every 1 s" in listing

    proxy.refuse()
    wait_until(lambda: (p := _probe(bot_server, "far")) is not None and not p.reachable, timeout=30)
    assert (_probe(bot_server, "hub") or reach.Reach(0, "none")).reachable
    started = time.monotonic()
    answer = command(slack, "U_ALICE", "C_GENERAL", "assess --cluster far")
    answered_in = time.monotonic() - started
    assert "Cluster *far* is not reachable from the central workers: GET /readyz: connection refused" in answer, answer
    assert "Nothing was queued" in answer and answered_in < 5, answered_in
    assert queued(bot_server) == {}
    listing = command(slack, "U_ALICE", "C_GENERAL", "clusters")
    line = next(line for line in listing.splitlines() if "*far*" in line)
    assert line.startswith(":red_circle:") and "not reachable: GET /readyz: connection refused" in line, line

    # The fleet matrix gets far's row at once; only hub is queued.
    answer = command(slack, "U_ALICE", "C_GENERAL", "assess --cluster all")
    assert "Assessing 2 cluster(s)" in answer and "Not reachable from the central workers: far" in answer, answer

    # Healed, the next probe says so and the same request is queued and answered.
    proxy.heal()
    wait_until(lambda: (p := _probe(bot_server, "far")) is not None and p.reachable, timeout=30)
    slack.add_channel("C_FAR", name="far", members=[slack.bot_user_id, "U_ALICE"])
    before = len(ephemeral_texts(slack))
    slack.slash_command("U_ALICE", "C_FAR", "assess --cluster far")
    wait_until(lambda: any(m["text"].startswith("Assessment of far:") for m in slack.messages("C_FAR")), timeout=150)
    assert not any("not reachable" in t for t in ephemeral_texts(slack)[before:])
