"""Block Kit views of an assessment: the progress message, the compact verdict, the details thread.

Built with ``slack_sdk`` block models; the texts are macros of ``templates/assessment_blocks.slack.j2``
(mrkdwn: everything read from the cluster, such as names and event messages, is escaped there) and
``templates/assessment_blocks.txt.j2`` (the notification texts, the header, the interruption). This module
arranges them, cuts long values before they are escaped and fits every block into Slack's limits
(:func:`chat.escape.truncate`). Used by ``service/assessment.py``, and ``interrupted_text`` by the
``assess`` command too; each view returns the notification text and the blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject, SectionBlock

from chat.escape import truncate
from incident.assessment import Assessment, CheckResult
from incident.templates import TemplateRenderer

MRKDWN = "assessment_blocks.slack.j2"
PLAIN = "assessment_blocks.txt.j2"
MAX_BLOCKS = 45
"""Slack allows 50 blocks per message; details are split into messages of at most this many."""
EVIDENCE_PER_PATTERN = 4


def _md(text: str, limit: int = 3000) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate(text, limit))


def _say(templates: TemplateRenderer, macro: str, /, **arguments: Any) -> str:
    """One mrkdwn text of the assessment, as the macro writes it (values escaped, not stripped)."""
    return templates.macro_exact(MRKDWN, macro, **arguments)


def _plain(templates: TemplateRenderer, macro: str, /, **arguments: Any) -> str:
    return templates.macro_exact(PLAIN, macro, **arguments)


def progress_view(cluster: str, checks: Sequence[tuple[str, str]], done: Sequence[CheckResult], elapsed_s: float,
                  budget_s: float, templates: TemplateRenderer, *, note: str | None = None) -> tuple[str, list[Block]]:
    """The progress message: which checks finished (with their status) and which still run.

    ``note``: mrkdwn shown under the checks as it is (:func:`rerun_note`)."""
    finished = {result.name: result for result in done}
    counts = {"done": len(finished), "total": len(checks)}
    rows = []
    for name, title in checks:
        result = finished.get(name)
        rows.append((title, result.status, truncate(result.summary, 90)) if result else (title, "running", None))
    blocks: list[Block] = [
        SectionBlock(text=_md(_say(templates, "progress_title", cluster=cluster, elapsed_s=elapsed_s, budget_s=budget_s,
                                   **counts))),
        ContextBlock(elements=[_md(_say(templates, "progress_lines", rows=rows))]),
    ]
    if note:
        blocks.append(ContextBlock(elements=[_md(note)]))
    return _plain(templates, "progress_text", cluster=cluster, **counts), blocks


def verdict_view(assessment: Assessment, templates: TemplateRenderer, *, details_in_thread: bool = True,
                 before: Sequence[Block] = (), plan: Sequence[Block] = ()) -> tuple[str, list[Block]]:
    """The compact verdict that replaces the progress message.

    ``before``: blocks under the headline (the delta after a recovery step, ``chat.recovery_blocks``);
    ``plan``: the recovery plan's steps and buttons, under the recovery order.
    """
    verdict = assessment.verdict
    blocks: list[Block] = [
        HeaderBlock(text=truncate(_plain(templates, "scope_header", scope=verdict.scope), 150)),
        SectionBlock(text=_md(_say(templates, "headline", text=verdict.headline))),
        *before,
    ]
    if assessment.interrupted:
        text = interrupted_text(assessment.interrupted, templates)
        blocks.append(ContextBlock(elements=[_md(_say(templates, "interrupted", text=text))]))
    for match in verdict.patterns[:5]:
        evidence = [truncate(line, 280) for line in match.evidence[:EVIDENCE_PER_PATTERN]]
        more = len(match.evidence) - EVIDENCE_PER_PATTERN
        blocks.append(SectionBlock(text=_md(_say(templates, "pattern", match=match, evidence=evidence, more=more))))
    if verdict.recovery:
        blocks.append(SectionBlock(text=_md(_say(templates, "recovery", steps=verdict.recovery))))
    blocks.extend(plan)
    if verdict.unchecked:
        rows = [(u.status, u.title, truncate(u.reason, 160)) for u in verdict.unchecked]
        blocks.append(ContextBlock(elements=[_md(_say(templates, "unchecked", rows=rows))]))
    blocks.append(ContextBlock(elements=[_md(_say(
        templates, "footer", checks=len(assessment.checks), duration_s=assessment.duration_s,
        counts=assessment.counts(), details_in_thread=details_in_thread))]))
    return _plain(templates, "verdict_text", cluster=assessment.cluster, headline=verdict.headline), blocks


def interrupted_text(interrupted: dict[str, object], templates: TemplateRenderer) -> str:
    """What an interrupted earlier attempt left (:func:`service.assessment.interruption`), as plain text: the
    ``assess`` command prints it, the verdict escapes it."""
    return _plain(templates, "interrupted", state=interrupted)


def rerun_note(interrupted: dict[str, object], templates: TemplateRenderer) -> str:
    """The progress note of an attempt that runs again after an interrupted one (mrkdwn, for ``note``)."""
    return _plain(templates, "rerun_note", state=interrupted)


def _check_section(check: CheckResult, templates: TemplateRenderer) -> SectionBlock:
    return SectionBlock(text=_md(_say(templates, "check", status=check.status, title=check.title or check.name,
                                      duration_s=check.duration_s, summary=check.summary)))


def detail_views(assessment: Assessment, templates: TemplateRenderer) -> list[tuple[str, list[Block]]]:
    """Thread messages: every check with its summary, the advice of each pattern, and the notes."""
    verdict = assessment.verdict
    blocks: list[Block] = [SectionBlock(text=_md(_say(templates, "checks_heading")))]
    blocks += [_check_section(check, templates) for check in assessment.checks]
    for match in verdict.patterns:
        blocks.append(DividerBlock())
        evidence = [truncate(line, 400) for line in match.evidence]
        blocks.append(SectionBlock(text=_md(_say(templates, "evidence", title=match.title, evidence=evidence))))
        blocks.append(SectionBlock(text=_md(_say(templates, "advice", advice=match.advice))))
    if verdict.notes:
        blocks.append(DividerBlock())
        notes = [truncate(note, 300) for note in verdict.notes]
        blocks.append(SectionBlock(text=_md(_say(templates, "notes", notes=notes))))
    blocks.append(ContextBlock(elements=[_md(_say(templates, "snapshot", assessment=assessment))]))
    messages = []
    for start in range(0, len(blocks), MAX_BLOCKS):
        chunk = blocks[start:start + MAX_BLOCKS]
        messages.append((_plain(templates, "details_text", number=start // MAX_BLOCKS + 1), chunk))
    return messages
