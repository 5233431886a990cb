"""Which Slack Web API methods the code calls, found with ``ast`` (no import, no execution).

Three shapes are recognised across ``bot/``, ``chat/``, ``service/`` and ``workers/``:

- ``<anything>.call("chat.postMessage", …)`` / ``.api_call("…")`` — the chokepoint ``SlackClient.call``;
- a literal passed to a function whose parameter is named ``method`` (``_paginate(slack, "conversations.history")``),
  positionally or as ``method="…"``;
- slack_sdk ``WebClient`` methods called by name (``client.views_open(…)`` → ``views.open``).

A non-literal method argument to ``.call`` is reported as unresolved, so nothing slips through.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from slack_sdk import WebClient

REPO = Path(__file__).resolve().parents[2]
SCANNED_PACKAGES = ("bot", "chat", "service", "workers")
CALL_NAMES = frozenset({"call", "api_call"})
CHOKEPOINT_DEFINITIONS = frozenset({"call", "api_call"})
_WEBCLIENT_METHODS = {name for name in vars(WebClient) if not name.startswith("_") and callable(getattr(WebClient, name))}


@dataclass
class SlackCalls:
    """Methods found (method → places) and calls whose method could not be resolved."""

    methods: dict[str, list[str]] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)

    def add(self, method: str, where: str) -> None:
        self.methods.setdefault(method, []).append(where)


def python_files(packages: Iterable[str] = SCANNED_PACKAGES) -> Iterator[Path]:
    for package in packages:
        yield from sorted((REPO / package).rglob("*.py"))


def _callee_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _method_param_positions(trees: dict[Path, ast.Module]) -> dict[str, int]:
    """Functions (by name) with a parameter called ``method``, and its position (``self`` excluded)."""
    positions: dict[str, int] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in CHOKEPOINT_DEFINITIONS:
                names = [a.arg for a in node.args.posonlyargs + node.args.args]
                if names and names[0] in ("self", "cls"):
                    names = names[1:]
                if "method" in names:
                    positions[node.name] = names.index("method")
    return positions


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def find_slack_calls(files: Iterable[Path] | None = None) -> SlackCalls:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in (files or python_files())}
    helpers = _method_param_positions(trees)
    found = SlackCalls()
    for path, tree in trees.items():
        relative = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _callee_name(node)
            where = f"{relative}:{node.lineno}"
            keyword = next((k.value for k in node.keywords if k.arg == "method"), None)
            if name in CALL_NAMES and isinstance(node.func, ast.Attribute):
                argument = node.args[0] if node.args else keyword
                method = _literal(argument)
                if method is not None:
                    found.add(method, where)
                elif not _is_passthrough(argument):
                    found.unresolved.append(f"{where}: {ast.unparse(node)[:120]}")
            elif name in helpers:
                position = helpers[name]
                argument = node.args[position] if len(node.args) > position else keyword
                method = _literal(argument)
                if method is not None:
                    found.add(method, where)
            elif isinstance(node.func, ast.Attribute) and name in _WEBCLIENT_METHODS and "_" in name:
                found.add(name.replace("_", "."), where)
    return found


def _is_passthrough(argument: ast.AST | None) -> bool:
    """``self.call(method, …)`` inside a helper that itself takes ``method``: resolved at the helper's callers."""
    return isinstance(argument, ast.Name) and argument.id == "method"
