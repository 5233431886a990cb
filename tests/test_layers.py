"""The layers import one way (docs/architecture.md): domain ← persistence/adapters ← service ← surfaces.

A new cross-layer import fails here with the file, the line and the rule it breaks. Imports inside
functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ALLOWED: dict[str, set[str]] = {
    # the pure domain: incidents, verdicts, the runbook, cadence, post-mortem — no Redis, Slack or Kubernetes
    "incident": set(),
    # shared observability (metrics, logging)
    "observability": {"incident"},
    # adapters: Redis, Slack, Kubernetes — each on its own, never each other
    "persistence": {"incident"},
    "chat": {"incident", "observability"},
    "kube": {"incident", "observability"},
    # the service layer
    "service": {"incident", "observability", "persistence", "chat", "kube"},
    # the surfaces: Slack (bot/), RQ entry points (workers/), the command line
    "bot": {"service", "incident", "chat", "observability"},
    "workers": {"service", "incident", "observability"},
    "k8s_incident_bot": {"bot", "workers", "service", "incident", "chat", "observability"},
}
"""Which of the project's packages each package may import (``sandbox`` is the test bed and demo: it may
import anything and nothing in production imports it, except the CLI's demo commands)."""

SANDBOX_COMMANDS = {"_cmd_demo", "_cmd_drill"}
"""The CLI functions that may import ``sandbox`` (the demo runs from a source checkout)."""


def _imports(path: Path, *, typing_only: bool = True) -> Iterator[tuple[int, str, str | None]]:
    """(line, imported module, enclosing top-level function) of every absolute import in a file.

    ``typing_only=False`` leaves out imports under ``if TYPE_CHECKING:``: they never run, so they make no
    import cycle (they still count for the layer rules: a type from a higher layer is a dependency).
    """
    tree = ast.parse(path.read_text(), str(path))

    def walk(node: ast.AST, function: str | None) -> Iterator[tuple[int, str, str | None]]:
        for child in ast.iter_child_nodes(node):
            inner = function
            if function is None and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = child.name
            if (not typing_only and isinstance(child, ast.If) and isinstance(child.test, ast.Name)
                    and child.test.id == "TYPE_CHECKING"):
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), inner)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child.lineno, alias.name, function
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                yield child.lineno, child.module, function
                for alias in child.names:  # ``from service import jobs`` imports service.jobs
                    yield child.lineno, f"{child.module}.{alias.name}", function
            yield from walk(child, inner)

    yield from walk(tree, None)


def _files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_packages_import_only_their_lower_layers() -> None:
    ours = set(ALLOWED) | {"sandbox"}
    broken: dict[str, str] = {}
    for package, allowed in ALLOWED.items():
        for path in _files(package):
            for line, module, function in _imports(path):
                top = module.split(".")[0]
                if top == package or top not in ours:
                    continue
                if top == "sandbox" and package == "k8s_incident_bot" and function in SANDBOX_COMMANDS:
                    continue
                if top not in allowed:
                    broken[f"{path.relative_to(REPO)}:{line}"] = (
                        f"{package} imports {module} ({package} may import only "
                        f"{', '.join(sorted(allowed)) or 'nothing of ours'})")
    assert not broken, "cross-layer imports:\n" + "\n".join(f"{where}: {why}" for where, why in sorted(broken.items()))


def _module_graph(package: str) -> dict[str, set[str]]:
    modules = {p.relative_to(REPO).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__"): p
               for p in _files(package)}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for _, module, _ in _imports(path, typing_only=False):
            if module in modules and module != name and module != package:
                graph[name].add(module)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {package: set() for package in ALLOWED}
    for package in ALLOWED:
        for path in _files(package):
            for _, module, _ in _imports(path):
                top = module.split(".")[0]
                if top in ALLOWED and top != package:
                    graph[package].add(top)
    assert _cycle(graph) is None, f"package import cycle: {' → '.join(_cycle(graph) or [])}"


def test_no_import_cycle_inside_a_package() -> None:
    for package in sorted(set(ALLOWED) - {"kube"}):
        cycle = _cycle(_module_graph(package))
        assert cycle is None, f"import cycle inside {package}/: {' → '.join(cycle or [])}"


def test_the_rules_cover_every_package() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "bench", "sandbox"}
    assert packages == set(ALLOWED), f"give these packages a layer: {sorted(packages ^ set(ALLOWED))}"


def test_the_architecture_doc_states_exactly_these_rules() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    block = text.split("```text layers\n", 1)[1].split("```", 1)[0]
    documented = {}
    for line in block.strip().splitlines():
        package, _, allowed = line.partition(":")
        documented[package.strip()] = {name.strip() for name in allowed.split(",") if name.strip()}
    assert documented == ALLOWED, "docs/architecture.md and tests/test_layers.py disagree on the layer rules"
