"""Every text a person reads lives in ``templates/`` (issue #15): the Block Kit builders of ``chat/`` write no
words of their own, and every macro they or the parsers name exists, so a typo fails here, not mid-incident."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from incident.templates import renderer_for

ROOT = Path(__file__).resolve().parents[2]
CHAT = sorted((ROOT / "chat").glob("*.py"))
WORDS = re.compile(r"[A-Za-z]{2,}")
TEXT_FIELDS = {"text", "title", "submit", "close", "label", "placeholder", "confirm", "deny"}
"""Keyword arguments of Block Kit models (buttons, headers, dialogs, modals, options) that Slack shows."""
MACRO_CALLERS = {"macro_exact": 1, "macro": 1, "_say": 1, "_plain": 1, "label": 0, "text": 0, "field": 0, "button": 0}
"""Functions of chat/ that take a macro's name, and at which position."""


def _literal_words(node: ast.AST) -> str:
    """The words a string literal, an f-string or a concatenation of them writes itself (not those of its
    values)."""
    if isinstance(node, ast.BinOp):
        return _literal_words(node.left) + _literal_words(node.right)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value for part in node.values
                       if isinstance(part, ast.Constant) and isinstance(part.value, str))
    return ""


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _module(name: str):  # noqa: ANN202 - a jinja2 TemplateModule
    renderer = renderer_for(None)
    env = renderer._slack if name.endswith(".slack.j2") else renderer._markdown
    return env.get_template(name).module


def _is_macro_family(name: str) -> bool:
    """Whether ``templates/<name>`` is a file of macros (rendering its top level needs no values)."""
    from jinja2 import UndefinedError

    try:
        _module(name)
    except UndefinedError:
        return False
    return True


def test_block_kit_texts_in_chat_are_not_written_in_python() -> None:
    offenders = []
    for path in CHAT:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg in TEXT_FIELDS and WORDS.search(_literal_words(keyword.value)):
                        offenders.append(f"{path.name}:{node.lineno} {keyword.arg}=")
            if isinstance(node, ast.Return) and node.value is not None and WORDS.search(_literal_words(node.value)):
                offenders.append(f"{path.name}:{node.lineno} return")
    assert offenders == []


def test_every_macro_a_chat_builder_names_is_in_its_templates() -> None:
    named = 0
    missing = []
    for path in CHAT:
        tree = ast.parse(path.read_text())
        constants = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        templates = {c for c in constants if c.endswith(".j2")}
        if any(isinstance(n, ast.Name) and n.id == "LABELS" for n in ast.walk(tree)):
            templates.add("block_labels.txt.j2")
        modules = [_module(name) for name in templates if _is_macro_family(name)]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _call_name(node) not in MACRO_CALLERS:
                continue
            position = MACRO_CALLERS[_call_name(node)]
            if len(node.args) > position and isinstance(node.args[position], ast.Constant):
                macro = node.args[position].value
                if isinstance(macro, str) and not macro.endswith(".j2"):
                    named += 1
                    if not any(callable(getattr(module, macro, None)) for module in modules):
                        missing.append(f"{path.name}:{node.lineno} {macro}")
    assert named > 50
    assert missing == []


def test_every_command_error_names_a_macro_of_the_template() -> None:
    from incident.command_errors import TEMPLATE

    module = _module(TEMPLATE)
    named = set()
    for path in [*(ROOT / "bot").glob("*.py"), *(ROOT / "incident").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and _call_name(node) in ("command_error", "command_text") and node.args
                    and isinstance(node.args[0], ast.Constant)):
                named.add(node.args[0].value)
    assert len(named) > 40
    assert sorted(name for name in named if not callable(getattr(module, name, None))) == []


def test_every_refusal_names_a_macro_of_refusals_and_every_macro_is_used() -> None:
    module = _module("refusals.slack.j2")
    named = set()
    for path in [*(ROOT / "bot").glob("*.py"), *(ROOT / "service").glob("*.py"), *(ROOT / "incident").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _call_name(node) in ("refusal", "button_value"):  # macro names, hints
                named.update(arg.value for arg in node.args if isinstance(arg, ast.Constant))
    defined = {name for name in dir(module) if not name.startswith("_") and callable(getattr(module, name))}
    assert sorted(named - defined) == []
    assert sorted(defined - named) == []  # a refusal no code raises any more is a dead text


def test_an_echoed_input_and_a_usage_line_are_inert() -> None:
    from bot.commands import build_registry
    from incident.errors import CommandError

    registry = build_registry()
    for text in ("cordon node <!channel>", "severity <@U1>", "nonsense&<b>"):
        try:
            registry.parse(text)
        except CommandError as error:
            shown = error.user_text()
            assert "<!" not in shown and "<@" not in shown and "<b>" not in shown, shown
            assert "&lt;" in shown, shown
        else:
            raise AssertionError(f"{text!r} parsed")


PACKAGES = ("bot", "workers", "service", "chat", "kube", "persistence", "incident", "k8s_incident_bot", "observability")
IDENTIFIER_ARGUMENTS = {"SlackApiError": 2}
"""Error classes whose first positional arguments are identifiers, not words (Slack's method and error code)."""


def _production_trees() -> list[tuple[Path, ast.Module]]:
    paths = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    return [(path, ast.parse(path.read_text())) for path in paths]


def _error_classes(trees: list[tuple[Path, ast.Module]]) -> set[str]:
    """The names of IncidentBotError and every class that derives from it, anywhere in the code."""
    bases = {node.name: {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                         for b in node.bases}
             for _, tree in trees for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    found = {"IncidentBotError"}
    while grown := {name for name, parents in bases.items() if parents & found} - found:
        found |= grown
    return found


def test_no_error_a_person_reads_is_worded_in_python() -> None:
    trees = _production_trees()
    classes = _error_classes(trees)
    assert {"ConfirmationError", "LeaseLost", "PagerDutyError", "UnknownCluster", "ScheduleBusy"} <= classes
    offenders = []
    for path, tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name in classes:
                worded = [*node.args[IDENTIFIER_ARGUMENTS.get(name, 0):],
                          *(k.value for k in node.keywords if k.arg in ("message", "hint"))]
            elif name == "__init__" and path.name == "errors.py":  # the classes' own texts
                worded = [*node.args, *(k.value for k in node.keywords if k.arg == "hint")]
            else:
                continue
            for value in worded:
                if WORDS.search(_literal_words(value)):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert offenders == []


def test_every_error_text_names_a_macro_and_every_macro_is_used() -> None:
    from incident.errors import PLAIN_TEMPLATE, TEMPLATE

    callers = {"error_text": TEMPLATE, "plain_error_text": PLAIN_TEMPLATE}
    named: dict[str, set[str]] = {TEMPLATE: set(), PLAIN_TEMPLATE: set()}
    for _, tree in _production_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in callers and node.args:
                assert isinstance(node.args[0], ast.Constant), f"line {node.lineno}: name the macro literally"
                named[callers[_call_name(node)]].add(node.args[0].value)
    for template, names in named.items():
        module = _module(template)
        defined = {name for name in dir(module) if not name.startswith("_") and callable(getattr(module, name))}
        assert len(names) > 10, template
        assert sorted(names - defined) == [], template
        assert sorted(defined - names) == [], template  # a text no code raises any more is a dead text
