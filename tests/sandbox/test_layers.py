"""The sandbox splits one way: the test bed and the Slack emulator never import the demo.

Three parts: the test bed (cluster, scenarios, Redis, proxy, processes — every module of ``sandbox/``
outside ``slack/`` and ``demo/``), the Slack emulator (``sandbox/slack/``), and the demo
(``sandbox/demo/``: stack, scenario catalogue, page), which builds on the other two. A generic part
that reaches for the demo drags the demo's page and catalogue into every test of the emulator or
the cluster and makes the demo impossible to change alone; the emulator and the test bed do not
need each other either. Imports inside functions count, and so do ``importlib`` calls with a literal.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SANDBOX = Path(__file__).resolve().parents[2] / "sandbox"
PARTS = {"demo": "sandbox.demo", "slack": "sandbox.slack"}


def _part(path: Path) -> str:
    relative = path.relative_to(SANDBOX).parts
    return relative[0] if relative[0] in PARTS else "testbed"


def _imports(path: Path, source: str | None = None) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (relative imports resolved)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = ".".join(("sandbox", *path.relative_to(SANDBOX).with_suffix("").parts[:-1]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(str(node.args[0].value))
    return found


def _violations(part: str, forbidden: tuple[str, ...]) -> list[str]:
    problems = []
    for path in sorted(SANDBOX.rglob("*.py")):
        if _part(path) != part:
            continue
        for module in sorted(_imports(path)):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                problems.append(f"{path.relative_to(SANDBOX.parent)} imports {module}")
    return problems


@pytest.mark.parametrize(("part", "forbidden"), [
    ("slack", ("sandbox.demo",)),
    ("testbed", ("sandbox.demo",)),
    ("slack", ("sandbox.cluster", "sandbox.scenarios", "sandbox.baseline", "sandbox.proxy", "sandbox.objects")),
    ("testbed", ("sandbox.slack",)),
], ids=["emulator-not-demo", "testbed-not-demo", "emulator-not-testbed", "testbed-not-emulator"])
def test_sandbox_layers_import_one_way(part: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(part, forbidden) == []


def test_the_check_sees_imports_inside_functions_and_relative_ones() -> None:
    source = ("import importlib\n"
              "def later():\n    from sandbox.demo import SCENARIOS\n    from ..demo import stack\n"
              "    importlib.import_module('sandbox.demo.page')\n")
    found = _imports(SANDBOX / "slack" / "probe.py", source)
    assert {"sandbox.demo.SCENARIOS", "sandbox.demo.stack", "sandbox.demo.page"} <= found
