"""Every kind of :mod:`incident.action_kinds` has exactly one executor in ``kube.actions``, and the other way round."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from kubernetes import client as k8s

from incident.action_kinds import action_specs
from incident.actions import ActionRequest
from kube.actions import KubeExecutor, default_executors, nodes, workloads


def test_every_kind_has_exactly_one_executor() -> None:
    counts = Counter(executor.kind for executor in default_executors())
    assert all(count == 1 for count in counts.values()), counts
    assert set(counts) == set(action_specs().kinds)


def test_each_executor_lives_in_its_familys_module() -> None:
    modules = {"nodes": nodes.EXECUTORS, "workloads": workloads.EXECUTORS}
    for spec in action_specs():
        assert [e.kind for e in modules[spec.family]].count(spec.kind) == 1, spec.kind


def test_an_executor_refuses_a_kind_it_does_not_know() -> None:
    executor = KubeExecutor(k8s.ApiClient(k8s.Configuration()), executors=nodes.EXECUTORS)
    request = ActionRequest(id="A1", cluster="c", kind="scale", target="shop/web", requested_by="U1", channel_id="C1",
                            requested_at=datetime(2026, 1, 1, tzinfo=UTC), params={"replicas": 1})
    with pytest.raises(ValueError, match="no executor for action kind 'scale'"):
        executor.prepare(request)
    with pytest.raises(ValueError, match="two executors"):
        KubeExecutor(k8s.ApiClient(k8s.Configuration()), executors=[*nodes.EXECUTORS, nodes.EXECUTORS[0]])


def test_no_import_cycle_inside_kube_actions() -> None:
    """``kube/`` as a whole is left out of tests/test_layers.py's cycle check (kube/checks); kube/actions is not."""
    from tests.test_layers import _cycle, _module_graph

    graph = {name: {m for m in deps if m.startswith("kube.actions")} for name, deps in _module_graph("kube").items()
             if name.startswith("kube.actions")}
    assert set(graph) == {"kube.actions", "kube.actions.api", "kube.actions.nodes", "kube.actions.workloads"}
    assert _cycle(graph) is None
