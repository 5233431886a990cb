"""The incident runbook's assessment knowledge, as data: thresholds, names, failure patterns, recovery order.

Nothing here talks to a cluster. The checks in ``kube/checks/`` read their thresholds and the names they
look for (CNI DaemonSets, ingress controllers, control-plane components) from this module, and
:mod:`incident.verdict` matches their facts against :data:`PATTERNS` and orders the advice by
:data:`RECOVERY_ORDER`. Changing the runbook means changing this file, not scattered ``if``s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["cluster-wide", "component", "healthy"]
Op = Literal["true", "false", ">", ">=", "nonempty"]


# -- thresholds --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Numbers the runbook uses to call something slow, stale or climbing."""

    apiserver_latency_ms: float = 100.0
    """A cheap request, ``/readyz`` or ``/livez`` slower than this is flagged (a warning, weak evidence)."""
    apiserver_degraded_ms: float = 1000.0
    """…slower than this, the control plane counts as failing (the pattern matches on latency alone)."""
    apiserver_probe_timeout_s: float = 10.0
    """The reachability probe gives up after this long (the API client's own limit is 30 s)."""
    latency_samples: int = 3
    """The cheap request is timed this many times; the median is reported."""
    lease_stale_s: float = 60.0
    """A node Lease not renewed for this long is a stale heartbeat (node-monitor-grace-period is 40-50 s)."""
    node_failure_cluster_wide_fraction: float = 0.5
    """Node failure counts as cluster-wide when at least this fraction of nodes is NotReady/Unknown."""
    restart_climbing: int = 5
    """A container restarted at least this often, last within the event window, is climbing."""
    pending_fail: int = 50
    """This many Pending pods cluster-wide makes the Pending check fail rather than warn."""
    cert_warn_days: float = 30.0
    """The apiserver serving certificate expiring sooner than this is a warning."""
    cert_fail_days: float = 7.0
    """…sooner than this (or already expired) is a failure."""
    top_offenders: int = 5
    """How many objects/reasons the evidence lists before saying "and N more"."""
    page_size: int = 500
    """LIST page size (``limit``); memory is bounded by one page per running check."""


THRESHOLDS = Thresholds()


# -- what to look for --------------------------------------------------------------------------------

SYSTEM_NAMESPACE = "kube-system"
NODE_LEASE_NAMESPACE = "kube-node-lease"

CONTROL_PLANE_COMPONENTS: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager")
"""Static-pod ``component=`` labels of a self-managed control plane (invisible on EKS/GKE/AKS)."""

CONTROL_PLANE_HIERARCHY: tuple[str, ...] = ("etcd", "apiserver", "scheduler/controller-manager")
"""Which control-plane failure is the cause of which: etcd > apiserver > scheduler/controller-manager."""

LEADER_LEASES: dict[str, str] = {"kube-scheduler": "scheduler/controller-manager",
                                 "kube-controller-manager": "scheduler/controller-manager"}
"""Leader-election Leases in kube-system whose staleness means the component stopped working."""

DNS_DEPLOYMENTS: tuple[str, ...] = ("coredns", "kube-dns")
DNS_LABEL_SELECTOR = "k8s-app=kube-dns"
DNS_SERVICE = "kube-dns"

CNI_DAEMONSETS: tuple[str, ...] = (
    "aws-node", "calico-node", "cilium", "kube-flannel-ds", "kube-flannel", "canal", "weave-net",
    "kube-router", "antrea-agent", "azure-cni", "azure-cns", "kube-ovn-cni", "ovnkube-node",
)
"""CNI DaemonSets by name, whatever namespace they run in."""

INGRESS_CONTROLLER_NAMES: tuple[str, ...] = (
    "ingress-nginx", "nginx-ingress", "traefik", "contour", "haproxy-ingress", "kong", "emissary-ingress",
    "aws-load-balancer-controller", "istio-ingressgateway", "envoy-gateway",
)
"""Names of common ingress controllers, as they appear in the labels below."""

INGRESS_LABEL_KEYS: tuple[str, ...] = ("app.kubernetes.io/name", "app")
"""Label keys carrying an ingress controller's name; one set-based LIST per key finds their pods."""

IP_EXHAUSTION_REASONS: tuple[str, ...] = ("FailedCreatePodSandBox",)
IP_EXHAUSTION_MARKERS: tuple[str, ...] = (
    "no available ip addresses", "failed to assign an ip address", "insufficientfreeaddressesinsubnet",
    "ipamd", "no ip addresses available", "failed to allocate for range", "ip address exhaust",
    "assignpodipv4address",
)
"""Lower-case fragments of event messages that mean the CNI ran out of pod IPs (aws-node/ipamd and host-local)."""

CRASH_REASONS: tuple[str, ...] = ("CrashLoopBackOff",)
STUCK_WAITING_REASONS: tuple[str, ...] = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull",
                                          "CreateContainerConfigError", "CreateContainerError", "RunContainerError")


# -- recovery order ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveryLayer:
    """One step of the recovery order."""

    key: str
    title: str
    advice: str


RECOVERY_ORDER: tuple[RecoveryLayer, ...] = (
    RecoveryLayer("infrastructure", "Infrastructure (nodes, network, cloud capacity)",
                  "Restore nodes, subnets and the CNI first; nothing above recovers while the ground is missing."),
    RecoveryLayer("etcd", "etcd", "Bring etcd back to quorum (or restore from backup) before touching the apiserver."),
    RecoveryLayer("apiserver", "API server", "Get kube-apiserver healthy and answering /readyz."),
    RecoveryLayer("scheduler/controller-manager", "Scheduler and controller-manager",
                  "Restart kube-scheduler and kube-controller-manager once the apiserver answers."),
    RecoveryLayer("dns/ingress", "DNS and ingress", "Restore CoreDNS endpoints, then the ingress controllers."),
    RecoveryLayer("applications", "Applications", "Only then fix individual workloads."),
)
"""The runbook's recovery order, first to last; actions go one at a time, checking after each."""

ONE_AT_A_TIME = "Change one thing at a time and re-run `/k8s assess` after each step before moving on."


def layer_index(key: str) -> int:
    """Position of a recovery layer in :data:`RECOVERY_ORDER` (unknown keys sort last)."""
    for index, layer in enumerate(RECOVERY_ORDER):
        if layer.key == key:
            return index
    return len(RECOVERY_ORDER)


# -- failure patterns --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """One fact of one check that points at a pattern.

    ``fact`` is a key of the check's facts; ``op`` compares it (``true``/``false``/``>``/``>=`` a
    ``value``/``nonempty``). ``evidence`` is formatted with the check's facts. ``layer`` overrides the
    pattern's recovery layer for this signal (the control-plane hierarchy); ``strong`` signals alone
    make the pattern match, weak ones only add evidence to a pattern matched by a strong one.
    """

    check: str
    fact: str
    op: Op
    evidence: str
    value: float = 0
    layer: str | None = None
    strong: bool = True


@dataclass(frozen=True)
class Pattern:
    """A failure pattern of the runbook: how to recognise it and what to do about it."""

    key: str
    title: str
    scope: Scope
    layer: str
    signals: tuple[Signal, ...]
    advice: tuple[str, ...]
    suppresses: tuple[str, ...] = field(default=())
    """Patterns whose symptoms this one explains (not reported separately when this one matches)."""


CONTROL_PLANE = Pattern(
    key="control-plane",
    title="Control-plane failure",
    scope="cluster-wide",
    layer="apiserver",
    signals=(
        Signal("apiserver", "reachable", "false", "API server unreachable: {error}", layer="apiserver"),
        Signal("apiserver", "etcd_ok", "false", "etcd unhealthy as the apiserver reports it: {etcd_detail}", layer="etcd"),
        Signal("etcd", "unhealthy", "nonempty", "etcd endpoint(s) unhealthy: {unhealthy}", layer="etcd"),
        Signal("apiserver", "readyz_failed", "nonempty", "apiserver readyz checks failing: {readyz_failed}", layer="apiserver"),
        Signal("apiserver", "livez_ok", "false", "apiserver /livez failing: {livez_detail}", layer="apiserver"),
        Signal("apiserver", "degraded", "true", "API server very slow: {slowest}", layer="apiserver"),
        Signal("apiserver", "slow", "true", "API server slow: {slowest}", layer="apiserver", strong=False),
        Signal("kube_system", "control_plane_unhealthy", "nonempty",
               "control-plane pods unhealthy: {control_plane_unhealthy}", layer="scheduler/controller-manager"),
        Signal("kube_system", "stale_leader_leases", "nonempty",
               "leader lease not renewed: {stale_leader_leases}", layer="scheduler/controller-manager"),
        Signal("kube_system", "componentstatus_unhealthy", "nonempty",
               "componentstatuses (deprecated, best-effort) report unhealthy: {componentstatus_unhealthy}", strong=False),
    ),
    advice=(
        "Follow the hierarchy etcd > apiserver > scheduler/controller-manager: fix the lowest failing layer first; "
        "failures above it are usually its consequence.",
        "etcd: check quorum and disk latency (`etcdctl endpoint health --cluster`, `endpoint status`); restore from "
        "backup if repair drags on.",
        "apiserver: check its logs, certificates and etcd connectivity; on a managed cluster, open a support case "
        "with the provider and check its status page.",
        "Do not restart or scale workloads while the control plane is down: nothing can be scheduled or reconciled.",
    ),
    suppresses=("single-workload",),
)

NODE_FAILURE = Pattern(
    key="node-failure",
    title="Node failure",
    scope="component",
    layer="infrastructure",
    signals=(
        Signal("nodes", "not_ready", ">", "{not_ready} node(s) NotReady: {not_ready_names}"),
        Signal("nodes", "unknown", ">", "{unknown} node(s) Unknown (kubelet stopped reporting): {unknown_names}"),
        Signal("nodes", "stale_leases", ">", "{stale_leases} node heartbeat(s) stale (Lease older than {lease_stale_s:.0f} s): "
               "{stale_lease_names}"),
        Signal("nodes", "pressure", "nonempty", "node pressure conditions: {pressure}", strong=False),
        Signal("disruption_budgets", "blocking", "nonempty",
               "PodDisruptionBudgets allowing no disruption will stall drains: {blocking}", strong=False),
    ),
    advice=(
        "Cordon the failed node(s) so nothing new lands there; check the instances in the cloud console "
        "(status checks, kubelet/container runtime logs).",
        "Replace or reboot the instance; drain only after the replacement capacity is Ready, and mind "
        "PodDisruptionBudgets that allow no disruption.",
        "Pods stuck Terminating on an unreachable node are released once the node object is deleted or comes back.",
    ),
    suppresses=("single-workload",),
)

IP_EXHAUSTION = Pattern(
    key="pod-ip-exhaustion",
    title="Pod IP exhaustion",
    scope="cluster-wide",
    layer="infrastructure",
    signals=(
        Signal("pod_network", "ip_exhaustion_events", ">", "{ip_exhaustion_events} sandbox failure event(s) about pod IPs, "
               "e.g. {ip_exhaustion_example}"),
        Signal("pending_pods", "container_creating", ">", "{container_creating} pod(s) stuck in ContainerCreating", strong=False),
        Signal("pod_network", "unhealthy_daemonsets", "nonempty", "CNI DaemonSet(s) not fully ready: {unhealthy_daemonsets}",
               strong=False),
    ),
    advice=(
        "Confirm in the VPC/subnet console that the node subnets are out of free addresses (aws-node/ipamd logs say "
        "`no available IP addresses`).",
        "Free addresses: scale down non-critical workloads, lower WARM_IP_TARGET/WARM_ENI_TARGET, or enable prefix "
        "delegation; add subnets (secondary CIDR) for a lasting fix.",
        "New pods start again on their own once IPs are free; no restarts are needed.",
    ),
    suppresses=("single-workload",),
)

CNI_FAILURE = Pattern(
    key="cni-failure",
    title="CNI failure",
    scope="cluster-wide",
    layer="infrastructure",
    signals=(
        Signal("pod_network", "failed_daemonsets", "nonempty", "CNI DaemonSet(s) with no ready pod: {failed_daemonsets}"),
        Signal("pod_network", "unhealthy_daemonsets", "nonempty", "CNI DaemonSet(s) not fully ready: {unhealthy_daemonsets}",
               strong=False),
    ),
    advice=(
        "Check the CNI pods' logs and the nodes they fail on; new pods there get no network until the CNI runs.",
        "Roll back a recent CNI upgrade or configuration change before anything else.",
    ),
    suppresses=("single-workload",),
)

DNS_CASCADE = Pattern(
    key="dns-cascade",
    title="DNS cascade",
    scope="cluster-wide",
    layer="dns/ingress",
    signals=(
        Signal("dns", "ready_endpoints_zero", "true", "kube-dns Service has no ready endpoints ({endpoints_detail})"),
        Signal("dns", "ready_replicas_zero", "true", "DNS deployment(s) have no ready replicas: {deployments_detail}"),
        Signal("dns", "degraded", "true", "DNS partially available: {deployments_detail}", strong=False),
    ),
    advice=(
        "Every service lookup in the cluster fails while CoreDNS is down, so most applications fail at once: "
        "fix DNS before any application.",
        "Check the CoreDNS pods (`kubectl -n kube-system get pods -l k8s-app=kube-dns`, their logs and readiness "
        "probes), the coredns ConfigMap for a recent change, and the nodes they run on.",
        "Restart or scale CoreDNS (one change at a time), then watch the kube-dns endpoints become ready.",
    ),
    suppresses=("single-workload",),
)

SINGLE_WORKLOAD = Pattern(
    key="single-workload",
    title="Single workload failure",
    scope="component",
    layer="applications",
    signals=(
        Signal("kube_system", "crashlooping", "nonempty", "kube-system pods in CrashLoopBackOff: {crashlooping}"),
        Signal("kube_system", "restarts_climbing", "nonempty", "restart counts climbing: {restarts_climbing}"),
        Signal("kube_system", "not_ready", "nonempty", "kube-system pods not ready: {not_ready}", strong=False),
        Signal("events", "backoff_objects", "nonempty", "BackOff events (crash-looping containers): {backoff_objects}"),
        Signal("events", "backoff_system_objects", "nonempty",
               "BackOff events in kube-system (crash-looping containers): {backoff_system_objects}", strong=False),
        Signal("pending_pods", "unschedulable", ">", "{unschedulable} pod(s) unschedulable: {unschedulable_example}"),
        Signal("ingress", "services_without_endpoints", "nonempty",
               "Services without ready endpoints: {services_without_endpoints}", strong=False),
    ),
    advice=(
        "The cluster itself is working: treat this as the owning team's incident for that workload.",
        "Look at the workload's last change (image, config, secrets), its logs (`kubectl logs --previous`) and events; "
        "roll back the last change before debugging forward.",
    ),
)

INGRESS_FAILURE = Pattern(
    key="ingress-failure",
    title="Ingress controller failure",
    scope="component",
    layer="dns/ingress",
    signals=(
        Signal("ingress", "controllers_unready", "nonempty", "ingress controller pods not ready: {controllers_unready}"),
        Signal("ingress", "controller_services_without_endpoints", "nonempty",
               "ingress controller Services without ready endpoints: {controller_services_without_endpoints}"),
    ),
    advice=(
        "Traffic from outside stops at the ingress: check the controller pods' logs, their readiness, and the "
        "load balancer's target health.",
        "Roll back a recent controller or Ingress change; scale the controller back up if it lost replicas.",
    ),
    suppresses=("single-workload",),
)

PATTERNS: tuple[Pattern, ...] = (CONTROL_PLANE, NODE_FAILURE, IP_EXHAUSTION, CNI_FAILURE, DNS_CASCADE, INGRESS_FAILURE,
                                 SINGLE_WORKLOAD)
"""Every pattern, in the order the recovery works through them."""

UNREACHABLE_HEADLINE = "control plane unreachable"
"""Phrase the verdict uses when the API server cannot be reached at all."""
