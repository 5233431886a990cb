"""Block Kit views of an assessment: the progress message, the compact verdict, the details thread.

Built with ``slack_sdk`` block models. Everything read from the cluster (names, event messages) is
escaped before it goes into mrkdwn. Used by ``workers/assess.py``; each function returns the
notification text and the blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject, SectionBlock

from chat.escape import escape_mrkdwn, truncate
from incident.assessment import Assessment, CheckResult, Verdict

STATUS_EMOJI = {
    "ok": ":white_check_mark:", "warn": ":warning:", "fail": ":x:", "timeout": ":hourglass:",
    "error": ":exclamation:", "skipped": ":heavy_minus_sign:", "running": ":hourglass_flowing_sand:",
}
SCOPE_HEADER = {
    "cluster-wide": ":rotating_light: Cluster-wide failure",
    "component": ":large_orange_circle: Component-level problem",
    "healthy": ":large_green_circle: No cluster-wide failure",
}
MAX_BLOCKS = 45
"""Slack allows 50 blocks per message; details are split into messages of at most this many."""
EVIDENCE_PER_PATTERN = 4


def _md(text: str, limit: int = 3000) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate(text, limit))


def _esc(text: object) -> str:
    return escape_mrkdwn(str(text))


def progress_view(cluster: str, checks: Sequence[tuple[str, str]], done: Sequence[CheckResult], elapsed_s: float,
                  budget_s: float, *, note: str | None = None) -> tuple[str, list[Block]]:
    """The progress message: which checks finished (with their status) and which still run."""
    finished = {result.name: result for result in done}
    text = f"Assessing cluster {cluster}: {len(finished)}/{len(checks)} checks done"
    lines = []
    for name, title in checks:
        result = finished.get(name)
        emoji = STATUS_EMOJI[result.status] if result else STATUS_EMOJI["running"]
        lines.append(f"{emoji} {_esc(title)}" + (f" — {_esc(truncate(result.summary, 90))}" if result else ""))
    blocks: list[Block] = [
        SectionBlock(text=_md(f":mag: *Assessing cluster `{_esc(cluster)}`* — {len(finished)}/{len(checks)} checks done "
                              f"({elapsed_s:.0f} s of the {budget_s:.0f} s budget)")),
        ContextBlock(elements=[_md("\n".join(lines))]),
    ]
    if note:
        blocks.append(ContextBlock(elements=[_md(note)]))
    return text, blocks


def _recovery_text(verdict: Verdict) -> str:
    lines = [f"{step.order}. *{_esc(step.title)}* — {_esc(step.advice)} _({_esc(', '.join(step.patterns))})_"
             for step in verdict.recovery]
    return "*Recovery order* (one change at a time, re-assess after each):\n" + "\n".join(lines)


def verdict_view(assessment: Assessment, *, details_in_thread: bool = True, before: Sequence[Block] = (),
                 plan: Sequence[Block] = ()) -> tuple[str, list[Block]]:
    """The compact verdict that replaces the progress message.

    ``before``: blocks under the headline (the delta after a recovery step, ``chat.recovery_blocks``);
    ``plan``: the recovery plan's steps and buttons, under the recovery order.
    """
    verdict = assessment.verdict
    counts = assessment.counts()
    text = f"Assessment of {assessment.cluster}: {verdict.headline}"
    blocks: list[Block] = [
        HeaderBlock(text=truncate(SCOPE_HEADER.get(verdict.scope, verdict.scope), 150)),
        SectionBlock(text=_md(f"*{_esc(verdict.headline)}*")),
        *before,
    ]
    if assessment.interrupted:
        blocks.append(ContextBlock(elements=[_md(":warning: " + _esc(interrupted_text(assessment.interrupted)))]))
    for match in verdict.patterns[:5]:
        evidence = "\n".join(f"• {_esc(truncate(line, 280))}" for line in match.evidence[:EVIDENCE_PER_PATTERN])
        more = len(match.evidence) - EVIDENCE_PER_PATTERN
        root = f", start with *{_esc(match.root_cause)}*" if match.root_cause else ""
        blocks.append(SectionBlock(text=_md(
            f"*{_esc(match.title)}* ({match.scope}{root})\n{evidence}" + (f"\n_…and {more} more_" if more > 0 else ""))))
    if verdict.recovery:
        blocks.append(SectionBlock(text=_md(_recovery_text(verdict))))
    blocks.extend(plan)
    if verdict.unchecked:
        lines = [f"{STATUS_EMOJI[u.status]} {_esc(u.title)}: {_esc(truncate(u.reason, 160))}" for u in verdict.unchecked]
        blocks.append(ContextBlock(elements=[_md("*Could not check:*\n" + "\n".join(lines))]))
    summary = " · ".join(f"{STATUS_EMOJI[status]} {count}" for status, count in counts.items() if count)
    footer = f"{len(assessment.checks)} checks in {assessment.duration_s:.1f} s · {summary}"
    if details_in_thread:
        footer += " · details in the thread"
    blocks.append(ContextBlock(elements=[_md(footer)]))
    return text, blocks


def interrupted_text(interrupted: dict[str, object]) -> str:
    finished = interrupted.get("finished") or []
    missing = interrupted.get("missing") or []
    return (f"An earlier attempt was interrupted ({interrupted.get('reason', 'the worker stopped')}) after "
            f"{len(finished)} check(s); missing then: {', '.join(map(str, missing)) or 'none'}.")  # type: ignore[arg-type]


def _check_section(check: CheckResult) -> SectionBlock:
    return SectionBlock(text=_md(f"{STATUS_EMOJI[check.status]} *{_esc(check.title or check.name)}* "
                                 f"_({check.duration_s:.1f} s)_\n{_esc(check.summary)}"))


def detail_views(assessment: Assessment) -> list[tuple[str, list[Block]]]:
    """Thread messages: every check with its summary, the advice of each pattern, and the notes."""
    verdict = assessment.verdict
    blocks: list[Block] = [SectionBlock(text=_md("*Checks*"))]
    blocks += [_check_section(check) for check in assessment.checks]
    for match in verdict.patterns:
        blocks.append(DividerBlock())
        evidence = "\n".join(f"• {_esc(truncate(line, 400))}" for line in match.evidence)
        advice = "\n".join(f"{i}. {_esc(line)}" for i, line in enumerate(match.advice, start=1))
        blocks.append(SectionBlock(text=_md(f"*{_esc(match.title)}* — evidence\n{evidence}")))
        blocks.append(SectionBlock(text=_md(f"*What to do*\n{advice}")))
    if verdict.notes:
        blocks.append(DividerBlock())
        blocks.append(SectionBlock(text=_md("*Notes*\n" + "\n".join(f"• {_esc(truncate(n, 300))}" for n in verdict.notes))))
    blocks.append(ContextBlock(elements=[_md(
        f"Snapshot {assessment.started_at:%Y-%m-%d %H:%M:%S UTC} · server {_esc(assessment.server or '?')} · "
        f"budget {assessment.budget_s:.0f} s")]))
    messages = []
    for start in range(0, len(blocks), MAX_BLOCKS):
        chunk = blocks[start:start + MAX_BLOCKS]
        messages.append((f"Assessment details ({start // MAX_BLOCKS + 1})", chunk))
    return messages
