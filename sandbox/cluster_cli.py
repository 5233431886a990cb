"""``python -m sandbox.cluster start|stop|status|kubeconfig``: the local control plane from a shell.

``start`` runs in the foreground (Ctrl-C or ``stop`` from another shell ends it) in a fixed work
directory under the cache, so the kubeconfig path stays the same between runs; a state file there
lets ``stop``, ``status`` and ``kubeconfig`` find the running cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from sandbox.binaries import BinaryBuildError, cache_root
from sandbox.cluster import ClusterError, LocalCluster

STATE_NAME = "state.json"


def default_workdir() -> Path:
    return cache_root() / "sandbox-cluster"


def _state(workdir: Path) -> dict[str, object] | None:
    try:
        state = json.loads((workdir / STATE_NAME).read_text())
    except (OSError, ValueError):
        return None
    pid = int(state.get("pid", 0))
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return None
    return dict(state)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def start(workdir: Path, nodes: int, baseline: bool) -> int:
    from sandbox.baseline import install_baseline

    if _state(workdir) is not None:
        print(f"a sandbox cluster is already running from {workdir}; run `python -m sandbox.cluster stop` first", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    cluster = LocalCluster(workdir)
    try:
        started = time.monotonic()
        print(f"starting etcd, kube-apiserver, controller-manager, scheduler and kwok with {nodes} nodes ...", file=sys.stderr)
        cluster.start(nodes=nodes)
        if baseline:
            with cluster.api_client() as api:
                install_baseline(api)
        state = {"pid": os.getpid(), "kubeconfig": str(cluster.kubeconfig), "server": cluster.server, "logs": str(cluster.logs_dir)}
        (workdir / STATE_NAME).write_text(json.dumps(state, indent=2))
        print(f"cluster ready in {time.monotonic() - started:.1f} s at {cluster.server}", file=sys.stderr)
        print(f"logs: {cluster.logs_dir}", file=sys.stderr)
        print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
        while all(process.startswith("running") for process in cluster.status().values()):
            time.sleep(1)
        print(f"a component stopped: {cluster.status()}; see {cluster.logs_dir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the sandbox cluster", file=sys.stderr)
        return 0
    except (ClusterError, BinaryBuildError) as error:
        print(f"sandbox cluster failed: {error}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
        (workdir / STATE_NAME).unlink(missing_ok=True)


def stop(workdir: Path) -> int:
    state = _state(workdir)
    if state is None:
        print("no sandbox cluster is running", file=sys.stderr)
        return 0
    pid = int(str(state["pid"]))
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _state(workdir) is not None:
        time.sleep(0.2)
    if _state(workdir) is not None:
        print(f"the cluster (pid {pid}) did not stop within 30 s", file=sys.stderr)
        return 1
    return 0


def status(workdir: Path) -> int:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    state = _state(workdir)
    if state is None:
        print("stopped")
        return 3
    try:
        with k8s_config.new_client_from_config(config_file=str(state["kubeconfig"])) as api:
            ready = LocalCluster.ready_node_count(api)
            print(f"running at {state['server']} (pid {state['pid']}), {ready} Ready node(s)")
            print(f"kubeconfig: {state['kubeconfig']}")
            version = k8s.VersionApi(api).get_code()
            print(f"version: {version.git_version}")
    except Exception as error:  # noqa: BLE001 - a status command reports whatever went wrong
        print(f"running (pid {state['pid']}) but the apiserver does not answer: {error}")
        return 1
    return 0


def kubeconfig(workdir: Path) -> int:
    state = _state(workdir)
    if state is None:
        print("no sandbox cluster is running; start one with `python -m sandbox.cluster start`", file=sys.stderr)
        return 1
    print(state["kubeconfig"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.cluster", description=__doc__)
    parser.add_argument("command", choices=["start", "stop", "status", "kubeconfig"])
    parser.add_argument("--workdir", type=Path, default=default_workdir(), help="cluster work directory (default: %(default)s)")
    parser.add_argument("--nodes", type=int, default=3, help="kwok nodes to create (start)")
    parser.add_argument("--no-baseline", action="store_true", help="skip CoreDNS and aws-node (start)")
    args = parser.parse_args(argv)
    if args.command == "start":
        return start(args.workdir, args.nodes, not args.no_baseline)
    if args.command == "stop":
        return stop(args.workdir)
    if args.command == "status":
        return status(args.workdir)
    return kubeconfig(args.workdir)
