"""A real local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.

Everything is built from source by :mod:`sandbox.binaries` and runs as plain processes on loopback ports
chosen at start. The apiserver serves TLS with client-certificate authentication and
``--authorization-mode=Node,RBAC``; the controller-manager and scheduler use their real identities; kwok
plays the kubelets of the nodes annotated ``kwok.x-k8s.io/node=fake`` (heartbeats, leases, pod
lifecycle) and leaves alone pods and nodes annotated ``kwok.x-k8s.io/status=custom``, whose status
the scenarios in :mod:`sandbox.scenarios` write themselves. The node Lease duration is a parameter:
renewing 5,000 Leases every 10 s is more than two cores can keep up with (see ``node_lease_seconds``).

Used by the pytest fixtures, the benchmarks and ``python -m sandbox.cluster start`` (the demo).
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from sandbox.binaries import ensure_binaries, kwok_stages_path
from sandbox.pki import Pki, create_pki, kubeconfig_document, write_kubeconfigs
from sandbox.ports import free_port
from sandbox.processes import ManagedProcess

KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
"""Nodes with this annotation are played by kwok (heartbeats, leases, pods Running)."""
KWOK_CUSTOM_STATUS_ANNOTATION = ("kwok.x-k8s.io/status", "custom")
"""Pods and nodes with this annotation are ignored by kwok: their status belongs to whoever writes it."""
SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.64.0.0/12"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ClusterError(RuntimeError):
    """The local control plane failed to start or to reach the wanted state; the message says why."""


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one cluster, picked free at start."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def pick(cls) -> "Ports":
        chosen: list[int] = []
        while len(chosen) < 6:
            port = free_port()
            if port not in chosen:
                chosen.append(port)
        return cls(*chosen)


def _advertise_address() -> str:
    """The host's outbound IPv4 address (Endpoints may not hold loopback addresses); TEST-NET-1 if none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it only selects a route
            address = str(probe.getsockname()[0])
        except OSError:
            return "192.0.2.1"
    return "192.0.2.1" if address.startswith("127.") else address


NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
"""The taint a kubelet registers its node with; the node lifecycle controller removes it once the node is Ready."""


def kwok_node_manifest(name: str, index: int = 0, labels: dict[str, str] | None = None, *,
                       registering: bool = True) -> dict[str, object]:
    """A node played by kwok, with EKS-like labels (zone spread by ``index``) and room for 110 pods.

    ``registering``: the node registers as a kubelet does, with :data:`NOT_READY_TAINT`, so no DaemonSet pod
    that does not tolerate the taint is created for it before it is Ready (``aws-node`` tolerates every
    taint, as on EKS, and gets its pod at once: see :func:`sandbox.objects.replay_skipped_pods`). Without it, the DaemonSet controller creates the node's pods at
    once, the scheduler refuses them while the lifecycle controller's not-ready taint is on (a
    ``FailedScheduling`` warning in kube-system that the resolve checklist then judges), and a refused pod
    may wait minutes for the scheduler's next retry. Thousands of nodes made at once for scale
    (:mod:`sandbox.scenarios.scale`) register without it: the controller would have to untaint each."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION[0]: KWOK_NODE_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": "m5.2xlarge",
                "topology.kubernetes.io/zone": f"eu-west-1{'abc'[index % 3]}",
                "type": "kwok",
                **(labels or {}),
            },
        },
        "spec": {"taints": [dict(NOT_READY_TAINT)]} if registering else {},
        "status": {
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        },
    }


class LocalCluster:
    """One control plane in its own work directory; ``with LocalCluster() as cluster:`` starts and stops it."""

    def __init__(self, workdir: Path | None = None, *, binaries: Path | None = None, node_prefix: str = "kwok-node",
                 node_lease_seconds: int = 40) -> None:
        """``node_lease_seconds``: the node Lease duration kwok uses; it renews every quarter of it (as a
        kubelet does). 40 s (the kubelet's default, a renewal every 10 s) suits up to a few thousand
        nodes; on two cores 5,000 nodes need 120 s (a renewal every 30 s, still half the assessment's
        60 s stale threshold): see :meth:`node_monitor_grace_s`."""
        self.node_lease_seconds = node_lease_seconds
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="k8sbot-cluster-"))
        self._binaries = binaries
        self.node_prefix = node_prefix
        self.ports: Ports | None = None
        self.pki: Pki | None = None
        self._kubeconfigs: dict[str, Path] = {}
        self._processes: dict[str, ManagedProcess] = {}
        self._next_node = 0

    # -- paths and clients -------------------------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def server(self) -> str:
        """``https://127.0.0.1:<port>`` of the apiserver."""
        return f"https://127.0.0.1:{self._ports().apiserver}"

    def component_pids(self) -> dict[str, int]:
        """Each running component's pid (etcd, the apiserver, …): the fleet benchmark reads their CPU time."""
        return {name: pid for name, process in self._processes.items() if (pid := process.pid) is not None}

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (``system:masters``), written at start."""
        if "admin" not in self._kubeconfigs:
            raise ClusterError("the cluster has not been started; call start() first")
        return self._kubeconfigs["admin"]

    def write_kubeconfig(self, path: Path, server: str | None = None) -> Path:
        """Write an admin kubeconfig pointing at ``server`` (e.g. a :mod:`sandbox.proxy` in front)."""
        if self.pki is None:
            raise ClusterError("the cluster has not been started; call start() first")
        document = kubeconfig_document(server or self.server, self.pki.ca.cert, self.pki.clients["admin"], "admin")
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        path.chmod(0o600)
        return path

    def api_client(self) -> k8s.ApiClient:
        """A new kubernetes ApiClient authenticated as the admin."""
        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def _ports(self) -> Ports:
        if self.ports is None:
            raise ClusterError("the cluster has not been started; call start() first")
        return self.ports

    def _bin(self, name: str) -> str:
        assert self._binaries is not None
        return str(self._binaries / name)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, nodes: int = 3, timeout: float = 90.0) -> "LocalCluster":
        """Start every component, create ``nodes`` kwok nodes and wait until they are Ready.

        Raises :class:`ClusterError` with the tail of the failing component's log; on failure
        everything already started is stopped again.
        """
        deadline = time.monotonic() + timeout
        if self._binaries is None:
            self._binaries = ensure_binaries()
        try:
            self._prepare()
            self._launch("etcd")
            self._wait(deadline, "etcd", self._etcd_healthy)
            self._launch("kube-apiserver")
            self._wait(deadline, "kube-apiserver", self._apiserver_ready)
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._launch(name)
            api = self.api_client()
            try:
                self.create_nodes(api, nodes)
                self._wait(deadline, "kube-controller-manager", lambda: self._default_service_account(api))
                self._wait(deadline, "kube-scheduler", lambda: self._component_healthy(self._ports().scheduler))
                self._wait(deadline, "kwok", lambda: self.ready_node_count(api) >= nodes)
            finally:
                api.close()
        except BaseException:
            self.stop(keep_logs=True)  # the error names log files: leave them for the reader
            raise
        return self

    def stop(self, *, keep_logs: bool = False) -> None:
        """Stop every component (kwok and controllers first, etcd last); idempotent.

        A work directory this object created is removed unless ``keep_logs``.
        """
        for name in reversed(COMPONENTS):
            process = self._processes.get(name)
            if process is not None:
                process.stop()
        if self._own_workdir and not keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def status(self) -> dict[str, str]:
        """Component name -> ``running (pid N)`` / ``exited with N`` / ``not started``."""
        return {name: (self._processes[name].describe() if name in self._processes else "not started") for name in COMPONENTS}

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (control plane unreachable); the other components keep running."""
        self._processes["kube-apiserver"].stop()

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start kube-apiserver again on the same port and wait for ``/readyz``."""
        self._processes["kube-apiserver"].start()
        self._wait(time.monotonic() + timeout, "kube-apiserver", self._apiserver_ready)

    def __enter__(self) -> "LocalCluster":
        """Start with the defaults unless already started (``with LocalCluster().start(nodes=5) as c:``)."""
        return self if self.running() else self.start()

    def running(self) -> bool:
        """Whether every component process is alive."""
        return bool(self._processes) and all(p.running() for p in self._processes.values())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- nodes -------------------------------------------------------------------------------------

    def create_nodes(self, api: k8s.ApiClient, count: int) -> list[str]:
        """Create ``count`` new kwok nodes named ``<prefix>-<n>``; returns their names (not yet waited for)."""
        core = k8s.CoreV1Api(api)
        names = []
        for _ in range(count):
            name = f"{self.node_prefix}-{self._next_node}"
            core.create_node(kwok_node_manifest(name, self._next_node))
            self._next_node += 1
            names.append(name)
        return names

    @staticmethod
    def node_ready(node: k8s.V1Node) -> bool:
        """Whether the node's Ready condition is True."""
        return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))

    @staticmethod
    def ready_node_count(api: k8s.ApiClient, label_selector: str = "") -> int:
        """Nodes whose Ready condition is True (optionally only those matching ``label_selector``).

        Read as JSON page by page (``_preload_content=False``), not into model objects: polled every few
        seconds while thousands of nodes come up, the models alone would keep a core busy.
        """
        core, ready, token = k8s.CoreV1Api(api), 0, None
        while True:
            response = core.list_node(label_selector=label_selector, limit=500, _continue=token, _preload_content=False)
            page = json.loads(response.data)
            ready += sum(1 for node in page.get("items") or ()
                         if any(c.get("type") == "Ready" and c.get("status") == "True"
                                for c in (node.get("status") or {}).get("conditions") or ()))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return ready

    def wait_nodes_ready(self, api: k8s.ApiClient, count: int, timeout: float = 60.0) -> None:
        """Wait until at least ``count`` nodes report Ready."""
        self._wait(time.monotonic() + timeout, "kwok", lambda: self.ready_node_count(api) >= count)

    @property
    def node_renew_interval_s(self) -> float:
        """How often kwok renews each node Lease (a quarter of the Lease duration, like a kubelet)."""
        return self.node_lease_seconds / 4

    @property
    def node_monitor_grace_s(self) -> int:
        """The node lifecycle controller's grace (``--node-monitor-grace-period``): Kubernetes' 50 s default,
        or three renewal intervals when renewals are rarer — so one late renewal never flips a node to
        Unknown while kwok works through thousands of Leases."""
        return max(50, int(3 * self.node_renew_interval_s))

    # -- internals ---------------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self.workdir.exists() and not self._own_workdir:
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = Ports.pick()
        self.pki = create_pki(self.workdir / "pki")
        self._kubeconfigs = write_kubeconfigs(self.pki, self.server, self.workdir / "kubeconfig")
        self._write_scheduler_config()
        self._write_kwok_config()
        self._processes = {name: ManagedProcess(name, self._args(name), self.logs_dir / f"{name}.log") for name in COMPONENTS}

    def _write_scheduler_config(self) -> None:
        config = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(self._kubeconfigs["kube-scheduler"]), "qps": 500, "burst": 1000},
            "leaderElection": {"leaderElect": False},
        }
        (self.workdir / "scheduler.yaml").write_text(yaml.safe_dump(config))

    def _write_kwok_config(self) -> None:
        """kwok parallelism above its defaults (4): stages at 8 — faster bulk pod starts without starving a
        2-core machine —, Lease renewals at 32: each is one synchronous update whose latency, on a busy
        apiserver, is what caps the renewal rate (5,000 nodes need 167 renewals/s at a 120 s Lease)."""
        config = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            "options": {"podPlayStageParallelism": 8, "nodePlayStageParallelism": 8, "nodeLeaseParallelism": 32},
        }
        (self.workdir / "kwok.yaml").write_text(yaml.safe_dump(config))

    def _args(self, name: str) -> list[str]:
        ports, pki, kubeconfigs = self._ports(), self.pki, self._kubeconfigs
        assert pki is not None
        if name == "etcd":
            peer, client = f"http://127.0.0.1:{ports.etcd_peer}", f"http://127.0.0.1:{ports.etcd_client}"
            return [
                self._bin("etcd"), "--name=sandbox", f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=sandbox={peer}", "--initial-cluster-state=new",
                "--unsafe-no-fsync=true", "--log-level=warn", "--quota-backend-bytes=8589934592",
            ]
        if name == "kube-apiserver":
            return [
                self._bin("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
                "--bind-address=127.0.0.1", f"--secure-port={ports.apiserver}",
                f"--advertise-address={_advertise_address()}",
                f"--tls-cert-file={pki.apiserver.cert}", f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca.cert}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true", "--profiling=false",
                "--max-requests-inflight=1000", "--max-mutating-requests-inflight=500",
            ]
        if name == "kube-controller-manager":
            kubeconfig = kubeconfigs["kube-controller-manager"]
            return [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}", "--authentication-skip-lookup=true",
                "--bind-address=127.0.0.1", f"--secure-port={ports.controller_manager}",
                f"--cert-dir={self.workdir / 'kube-controller-manager'}",
                "--use-service-account-credentials=true",
                f"--root-ca-file={pki.ca.cert}", f"--service-account-private-key-file={pki.service_account_key}",
                f"--cluster-signing-cert-file={pki.ca.cert}", f"--cluster-signing-key-file={pki.ca.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--cluster-name=k8s-incident-bot-sandbox",
                "--leader-elect=false", "--kube-api-qps=500", "--kube-api-burst=1000",
                "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
                f"--node-monitor-grace-period={self.node_monitor_grace_s}s",
            ]
        if name == "kube-scheduler":
            kubeconfig = kubeconfigs["kube-scheduler"]
            return [
                self._bin("kube-scheduler"), f"--config={self.workdir / 'scheduler.yaml'}",
                f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
                "--authentication-skip-lookup=true",
                "--bind-address=127.0.0.1", f"--secure-port={ports.scheduler}",
                f"--cert-dir={self.workdir / 'kube-scheduler'}",
            ]
        if name == "kwok":
            return [
                self._bin("kwok"), f"--kubeconfig={kubeconfigs['kwok']}",
                f"--config={kwok_stages_path(self._binaries)}", f"--config={self.workdir / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={'='.join(KWOK_NODE_ANNOTATION)}",
                f"--disregard-status-with-annotation-selector={'='.join(KWOK_CUSTOM_STATUS_ANNOTATION)}",
                f"--cidr={POD_CIDR}", "--node-ip=10.255.0.1", f"--node-lease-duration-seconds={self.node_lease_seconds}",
                f"--server-address=127.0.0.1:{ports.kwok}",
            ]
        raise ValueError(f"unknown component {name!r}")

    def _launch(self, name: str) -> None:
        self._processes[name].start()

    def _wait(self, deadline: float, component: str, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until it is true; fail fast if any component exited, or at the deadline."""
        last_error = ""
        while True:
            for name, process in self._processes.items():
                code = process.exit_code()
                if code is not None:
                    raise ClusterError(
                        f"{name} exited with {code} while waiting for {component}; last lines of {process.log_path}:\n"
                        f"{process.tail()}"
                    )
            try:
                if ready():
                    return
            except (OSError, ApiException, ssl.SSLError, ValueError) as error:
                last_error = f"{type(error).__name__}: {error}"
            if time.monotonic() > deadline:
                process = self._processes[component]
                raise ClusterError(
                    f"{component} did not become ready in time ({last_error or 'condition not met'}); "
                    f"last lines of {process.log_path}:\n{process.tail()}"
                )
            time.sleep(0.2)

    def _etcd_healthy(self) -> bool:
        url = f"http://127.0.0.1:{self._ports().etcd_client}/health"
        with urllib.request.urlopen(url, timeout=2) as response:
            return b'"true"' in response.read()

    def _admin_ssl_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        admin = self.pki.clients["admin"]
        context.load_cert_chain(str(admin.cert), str(admin.key))
        return context

    def _apiserver_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=3, context=self._admin_ssl_context()) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    @staticmethod
    def _component_healthy(port: int) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the component's self-signed serving certificate
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=3, context=context) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    def _default_service_account(self, api: k8s.ApiClient) -> bool:
        if not self._component_healthy(self._ports().controller_manager):
            return False
        try:
            k8s.CoreV1Api(api).read_namespaced_service_account("default", "default")
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


if __name__ == "__main__":
    import sys

    from sandbox.cluster_cli import main

    sys.exit(main())
