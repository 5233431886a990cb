"""Every kind of :mod:`incident.action_kinds` has exactly one executor in ``kube.actions``, and the other way round."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from kubernetes import client as k8s

from incident.action_kinds import action_specs
from incident.actions import ActionRequest
from kube.actions import KubeExecutor, default_executors, nodes, probes, workloads
from kube.actions.api import ActionTexts


def test_every_kind_has_exactly_one_executor() -> None:
    counts = Counter(executor.kind for executor in default_executors())
    assert all(count == 1 for count in counts.values()), counts
    assert set(counts) == set(action_specs().kinds)


def test_each_executor_lives_in_its_familys_module() -> None:
    modules = {"nodes": nodes.EXECUTORS, "workloads": workloads.EXECUTORS, "probes": probes.EXECUTORS}
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
    assert set(graph) == {"kube.actions", "kube.actions.api", "kube.actions.nodes", "kube.actions.probes",
                          "kube.actions.workloads"}
    assert _cycle(graph) is None


def test_every_text_an_executor_says_is_a_macro_of_the_template() -> None:
    """``api.say("name", …)`` names a macro of ``templates/kube_actions.txt.j2``; a typo fails here, not mid-incident."""
    import ast
    from pathlib import Path

    from incident.templates import renderer_for

    module = renderer_for(None)._markdown.get_template(ActionTexts.TEMPLATE).module
    root = Path(__file__).resolve().parents[2]
    said: set[str] = set()
    for path in [*(root / "kube" / "actions").glob("*.py"), root / "kube" / "impersonation.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "say"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                said.add(node.args[0].value)
    assert len(said) > 40
    assert sorted(name for name in said if not callable(getattr(module, name, None))) == []


def test_api_errors_are_plain_text_escaped_once_by_the_slack_template() -> None:
    """The API server's message may quote what was sent: it stays raw here and is escaped where it is shown."""
    from kubernetes.client.rest import ApiException

    from incident.templates import renderer_for
    from kube.actions.api import api_error

    texts = ActionTexts()
    error = ApiException(status=422)
    error.body = '{"message": "value <!channel> & more is invalid"}'
    refused = api_error(error, texts.say("node", name="n1"), "patch", texts.say("bot_identity"), texts)
    assert refused.user_text() == "The API server refused to patch Node `n1`: value <!channel> & more is invalid"
    shown = renderer_for(None).render("bot_error.slack.j2", message=refused.user_text())
    assert "&lt;!channel&gt; &amp; more" in shown and "&amp;amp;" not in shown


def test_a_drain_dry_run_reads_as_before() -> None:
    texts = ActionTexts()
    summary = texts.say("drain_dry_run", name="n1", already_cordoned=False, evict=[f"a/p{i}" for i in range(10)],
                        blocked=["a/p1"], timeout=300, unmanaged=[], daemonset=2, mirror=0, terminating=1, limit=8)
    assert summary.splitlines() == [
        "• cordon node `n1` (spec.unschedulable false → true)",
        "• evict 10 pod(s): `a/p0`, `a/p1`, `a/p2`, `a/p3`, `a/p4`, `a/p5`, `a/p6`, `a/p7` and 2 more",
        "• :warning: 1 eviction(s) refused right now by a PodDisruptionBudget: `a/p1` — retried for up to 300s, "
        "then reported",
        "• skip 2 DaemonSet pod(s) and 0 mirror pod(s)",
        "• 1 pod(s) already terminating",
    ]
    assert texts.say("drain_dry_run", name="n1", already_cordoned=True, evict=[], blocked=[], timeout=300,
                     unmanaged=[], daemonset=0, mirror=0, terminating=0, limit=8).splitlines() == [
        "• node `n1` is already cordoned", "• evict 0 pod(s) (none to evict)"]

