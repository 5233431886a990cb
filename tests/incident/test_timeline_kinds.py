"""Timeline entry kinds are one typed set: written only if named, and each used or deliberately ignored by the post-mortem."""

from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path

import pytest

from incident.cadence import DIGEST_KINDS, NoticeKind
from incident.postmortem import IGNORED_KINDS, USED_KINDS
from incident.timeline import EntryKind
from persistence.timeline import entry_fields

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("bot", "chat", "incident", "kube", "persistence", "service", "workers", "sandbox")


def test_every_kind_is_used_or_deliberately_ignored_by_the_postmortem() -> None:
    assert not USED_KINDS & set(IGNORED_KINDS), "a kind cannot be both used and ignored"
    missing = set(EntryKind) - USED_KINDS - set(IGNORED_KINDS)
    assert not missing, f"say whether the post-mortem uses or ignores: {sorted(missing)}"
    assert all(reason.strip() for reason in IGNORED_KINDS.values())


def test_the_reminders_record_their_sends_under_named_kinds() -> None:
    assert {kind.value for kind in NoticeKind} <= {kind.value for kind in EntryKind}
    assert DIGEST_KINDS <= set(EntryKind)


def test_an_unnamed_kind_is_refused_before_anything_is_written() -> None:
    with pytest.raises(ValueError, match="unknown timeline entry kind 'made_up'"):
        entry_fields("made_up", "bot", datetime.now(timezone.utc), {})
    fields = entry_fields(EntryKind.STATUS_UPDATE, "U1", datetime(2026, 1, 1, tzinfo=timezone.utc), {"text": "x"})
    assert fields == {"kind": "status_update", "actor": "U1", "at": "1767225600.0", "data": '{"text": "x"}'}


def _literal_appends() -> list[tuple[str, str]]:
    """``something.append("kind", actor, …)`` calls with a literal kind (a list's append takes one argument)."""
    found = []
    for package in PRODUCT:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append"
                        and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    found.append((f"{path.relative_to(REPO)}:{node.lineno}", node.args[0].value))
    return found


def test_every_literal_kind_in_the_code_is_named() -> None:
    named = {kind.value for kind in EntryKind}
    unnamed = [(where, kind) for where, kind in _literal_appends() if kind not in named]
    assert not unnamed, f"timeline kinds written but not in EntryKind: {unnamed}"
