"""Whether the central clusters answer: the central workers probe them, the bot reads the answers.

A central cluster's jobs wait in its queues for the central workers, which reach its apiserver through the
cluster's kubeconfig context. If that apiserver is down, or the context points at the wrong place, an
assessment queued for it would only fail after its timeouts. So every central worker probes each central
cluster of the registry every ``CLUSTER_PROBE_SECONDS`` (``GET /readyz``, :func:`kube.reach.probe`, with a
timeout of at most :data:`PROBE_TIMEOUT_SECONDS`) and records the answer in Redis
(:meth:`persistence.fleet.FleetStore.record_reach`) for :data:`KEPT_PROBES` intervals. The bot never
connects to an apiserver for this: :func:`service.cluster_jobs.require_reachable` reads the record and refuses
a request at once, with the reason, when the last probe failed; ``/k8s clusters`` shows it.

The probe is the central workers' view on purpose: they are the ones that would run the job. When no
record is kept (no central worker probed lately, or a one-cluster install without ``CLUSTERS_FILE``, which
is not probed), nothing is refused: the request is queued as before.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from incident.clusters import load_registry
from incident.settings import Settings
from persistence.fleet import FleetStore, Reach
from service.context import Context

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 3.0
"""A probe's request timeout (shorter when the interval is): an apiserver slower than this to say it is ready
is not one to send an assessment to."""
KEPT_PROBES = 3
"""A probe's answer is kept this many intervals: one missed probe (a busy worker) does not forget it."""


def probe_timeout(settings: Settings) -> float:
    return min(PROBE_TIMEOUT_SECONDS, max(0.5, settings.cluster_probe_seconds / 2))


def probed_clusters(settings: Settings) -> list[str]:
    """The central clusters the central workers probe (none without ``CLUSTERS_FILE``)."""
    registry = load_registry(settings)
    return [] if registry.implicit else [cluster.name for cluster in registry.central()]


def probe_central_clusters(ctx: Context) -> dict[str, str | None]:
    """Probe every central cluster at once and record each answer; returns cluster → problem (``None``: reachable)."""
    from kube.reach import probe  # the Kubernetes client only where probes run (the central workers)

    registry = load_registry(ctx.settings)
    names = probed_clusters(ctx.settings)
    if not names:
        return {}
    timeout = probe_timeout(ctx.settings)
    with ThreadPoolExecutor(max_workers=min(8, len(names)), thread_name_prefix="cluster-probe") as pool:
        answers = dict(zip(names, pool.map(
            lambda name: probe(registry.settings_for(ctx.settings, name), timeout), names)))
    store = FleetStore(ctx.redis, ctx.keys)
    for name, problem in answers.items():
        store.record_reach(name, problem, ctx.settings.cluster_probe_seconds * KEPT_PROBES + int(timeout) + 1)
    return answers


def last_probe(ctx: Context, cluster: str) -> Reach | None:
    """The central workers' last kept probe of ``cluster`` (``None``: not probed lately)."""
    return FleetStore(ctx.redis, ctx.keys).reach(cluster)


def unreachable_text(ctx: Context, cluster: str, reach: Reach) -> str:
    return ctx.templates.render("cluster_unreachable.slack.j2", cluster=cluster, problem=reach.problem,
                                age=reach.age(), every=ctx.settings.cluster_probe_seconds)


def start_probing(settings: Settings) -> threading.Event | None:
    """In a central worker: probe the central clusters every ``CLUSTER_PROBE_SECONDS`` in a daemon thread until the
    returned event is set (``None``: there is nothing to probe)."""
    if not probed_clusters(settings):
        return None
    stop = threading.Event()
    ctx = Context.from_settings(settings)

    def loop() -> None:
        while not stop.is_set():
            try:
                problems = probe_central_clusters(ctx)
            except Exception:  # noqa: BLE001 - a failed round (Redis away) is logged; the next one retries
                log.exception("could not probe the central clusters")
            else:
                for name, problem in problems.items():
                    if problem is not None:
                        log.warning("central cluster %s is not reachable: %s", name, problem)
            stop.wait(settings.cluster_probe_seconds)

    threading.Thread(target=loop, name="cluster-probes", daemon=True).start()
    return stop
