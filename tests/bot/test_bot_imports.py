"""``bot/`` has no import cycle: every import between its modules counts, at module level, inside functions
and under ``TYPE_CHECKING`` alike, so a command or a listener cannot re-introduce the old circle
(grammar → action_commands → commands → grammar) by importing lazily."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "bot":
                found |= {f"bot.{alias.name}" for alias in node.names}
            elif node.module.startswith("bot."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("bot.")}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"bot.{path.stem}": path for path in BOT.glob("*.py") if path.stem != "__init__"}
    return {name: _imports(path) & set(modules) for name, path in modules.items()}


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


def test_no_import_cycle_inside_bot() -> None:
    graph = _graph()
    assert {"bot.grammar", "bot.commands", "bot.action_commands", "bot.app"} <= set(graph)
    cycle = _cycle(graph)
    assert cycle is None, " → ".join(cycle or [])


def test_the_grammar_imports_no_command_module() -> None:
    assert not _graph()["bot.grammar"] & {"bot.commands", "bot.action_commands", "bot.app"}


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
