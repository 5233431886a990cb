"""LIST streams on the real apiserver: read-ahead pages, coverage when cut, shared reads, read freshness.

Page size 1 turns the session cluster's few nodes into many pages, so paging, cutting and sharing are
exercised without a big cluster; the assessment's own use of them is checked at the end.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client as k8s

from incident.settings import Settings
from kube.assessor import assess
from kube.checks import CappedNames, Finding, capped, partial
from kube.checks.events import WARNING_EVENTS
from kube.checks.kube_system import SYSTEM_PODS
from kube.client import CACHED, KubeApi, ListRequest, RequestRecord, SharedList, list_metadata

pytestmark = pytest.mark.cluster

NODES = ListRequest("/api/v1/nodes")


def node_names(api: k8s.ApiClient) -> list[str]:
    return sorted(node.metadata.name for node in k8s.CoreV1Api(api).list_node().items)


def test_a_stream_reads_every_page_and_keeps_the_first_pages_clock(k8s_api: k8s.ApiClient) -> None:
    recorder: list[RequestRecord] = []
    kube = KubeApi(k8s_api, recorder=recorder)
    stream = kube.stream(NODES, limit=1)
    names = [item["metadata"]["name"] for item in stream.items()]
    assert sorted(names) == node_names(k8s_api)
    assert stream.complete and stream.cut is None and stream.seen == len(names) == stream.pages_read
    assert len(recorder) == len(names) and all(r.bytes > 0 for r in recorder)
    last_page_clock = kube.get(NODES.path, NODES.params(1, None)).server_time
    assert stream.snapshot_time is not None and last_page_clock is not None
    assert stream.snapshot_time <= last_page_clock  # the first page's clock, kept while later pages arrive


def test_a_stream_cut_at_its_deadline_says_how_far_it_got(k8s_api: k8s.ApiClient) -> None:
    total = len(node_names(k8s_api))
    assert total >= 3
    kube = KubeApi(k8s_api, deadline=time.monotonic() + 3.0)
    stream = kube.stream(NODES, limit=1)
    pages = stream.pages()
    assert len(next(pages)) == 1
    assert stream.stop_at is not None
    time.sleep(max(0.0, stream.stop_at - time.monotonic()) + 0.05)  # the reader is slow: its deadline passes
    assert list(pages) == []
    assert not stream.complete and stream.cut == "stopped at the deadline"
    assert stream.seen == 1 and stream.total_estimate == total
    assert stream.coverage() == f"1 of about {total}"

    # What a check makes of it: a failure seen in the part read stands, anything else is not a pass.
    passed = partial(Finding("ok", "1/1 Ready", {"ready": 1}), stream)
    assert passed.status == "timeout"
    assert passed.summary.startswith("did not finish (stopped at the deadline; /api/v1/nodes: read 1 of about")
    assert passed.facts["partial"] is True and passed.facts["covered"] == {"/api/v1/nodes": 1}
    failed = partial(Finding("fail", "0/1 Ready", {"not_ready": 1}), stream)
    assert failed.status == "fail" and "[partial: /api/v1/nodes: read 1 of about" in failed.summary
    assert failed.facts["not_ready"] == 1


def test_a_complete_stream_leaves_the_finding_alone(k8s_api: k8s.ApiClient) -> None:
    stream = KubeApi(k8s_api).stream(NODES, limit=2)
    list(stream.items())
    finding = Finding("ok", "all Ready", {"ready": 3})
    assert partial(finding, stream) is finding


def test_a_shared_list_is_read_once_for_every_reader(k8s_api: k8s.ApiClient) -> None:
    recorder: list[RequestRecord] = []
    kube = KubeApi(k8s_api, recorder=recorder, deadline=time.monotonic() + 30)
    shared = SharedList(kube.with_deadline(time.monotonic() + 30, "shared"), NODES, readers=2, limit=1)
    readers = [shared.subscribe(time.monotonic() + 30) for _ in range(2)]
    seen: dict[int, list[str]] = {}

    def read(index: int) -> None:
        subscription = readers[index]
        assert subscription is not None
        seen[index] = [item["metadata"]["name"] for item in subscription.items()]

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    expected = node_names(k8s_api)
    assert sorted(seen[0]) == sorted(seen[1]) == expected
    assert all(r is not None and r.complete for r in readers)
    assert [r.label for r in recorder] == ["shared"] * len(expected)  # one page per node, fetched once
    assert shared.subscribe(time.monotonic() + 30) is None  # reading has begun: a late reader lists on its own


def test_a_cached_list_comes_back_whole_ignoring_limit(k8s_api: k8s.ApiClient) -> None:
    """Why only small LISTs are read from the watch cache: ``resourceVersion=0`` makes it ignore ``limit``."""
    kube = KubeApi(k8s_api)
    body = kube.get(NODES.path, ListRequest(NODES.path, freshness=CACHED).params(1, None)).body
    page = json.loads(body)
    assert len(page["items"]) == len(node_names(k8s_api)) >= 3
    assert not page["metadata"].get("continue")
    paged = kube.get(NODES.path, NODES.params(1, None)).body
    assert list_metadata(paged) == json.loads(paged)["metadata"] and list_metadata(paged)["continue"]


def test_capped_names_keep_the_first_names_in_order_and_count_the_rest() -> None:
    names = [f"node-{i:04d}" for i in (7, 3, 9, 1, 8, 2, 6, 4, 5, 0) * 3]
    kept = CappedNames(4)
    for name in names:
        kept.add(name)
    assert kept.facts() == capped(sorted(names), 4) == ["node-0000", "node-0000", "node-0000", "node-0001", "… 26 more"]
    assert len(kept) == 30 and kept.first(2) == ["node-0000", "node-0000"]
    assert not CappedNames(4) and CappedNames(4).facts() == []


def test_the_assessment_reads_shared_lists_once(kubeconfig: object, settled_cluster: k8s.ApiClient) -> None:
    settings = Settings(kubeconfig=kubeconfig)  # type: ignore[arg-type]
    recorder: list[RequestRecord] = []
    kube = KubeApi.from_settings(settings)
    kube.recorder = recorder
    try:
        assessment = assess(settings, kube=kube)
    finally:
        kube.close()
    first_pages = [r for r in recorder if not r.params.get("continue")]
    system_pods = [r for r in first_pages if r.path == SYSTEM_PODS.path]
    warnings = [r for r in first_pages if r.path == WARNING_EVENTS.path]
    assert len(system_pods) == 1 and system_pods[0].label == f"shared {SYSTEM_PODS.describe()}"
    assert len(warnings) == 1 and warnings[0].label == f"shared {WARNING_EVENTS.describe()}"
    assert not [r for r in first_pages if r.path == "/api/v1/events" and "reason=" in str(r.params)]
    dns = assessment.check("dns")
    assert dns is not None and dns.facts["pods_ready"] == dns.facts["pods_total"] == 2
    network = assessment.check("pod_network")
    assert network is not None and network.facts["cni_pods_not_ready"] == 0
    assert not any(c.facts.get("partial") for c in assessment.checks)
