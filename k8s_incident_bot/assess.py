"""``k8s-incident-bot assess``: the same assessment from a shell, as a readable table or as JSON.

Runs in the calling process (no worker, no Slack). Progress lines go to stderr as checks finish; the
table (or ``--json`` snapshot) goes to stdout. Exit code: 0 healthy, 1 component-level, 2 cluster-wide,
3 when the assessment itself could not start (bad kubeconfig).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from typing import TextIO

from incident.assessment import Assessment, CheckResult
from incident.errors import ClusterError
from incident.settings import Settings
from incident.templates import TemplateRenderer, renderer_for

STATUS_MARK = {"ok": "OK", "warn": "WARN", "fail": "FAIL", "timeout": "TIMEOUT", "error": "ERROR", "skipped": "SKIP"}
EXIT_CODES = {"healthy": 0, "component": 1, "cluster-wide": 2}


def _wrap(text: str, width: int, indent: str) -> str:
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent=indent + "  ")


def format_table(assessment: Assessment, width: int = 110, *, templates: TemplateRenderer | None = None) -> str:
    """The assessment as plain text: the checks table, the verdict, patterns, recovery order, unknowns.

    ``templates``: where the interruption's text comes from (the bundled templates by default)."""
    rows = [(check.title or check.name, STATUS_MARK[check.status], f"{check.duration_s:.1f}s", check.summary)
            for check in assessment.checks]
    name_w = max(len("CHECK"), *(len(r[0]) for r in rows)) if rows else 5
    status_w = max(len(v) for v in STATUS_MARK.values())
    summary_w = max(30, width - name_w - status_w - 10)
    lines = [f"Cluster {assessment.cluster} ({assessment.server or '?'}) — assessed in {assessment.duration_s:.1f} s "
             f"(budget {assessment.budget_s:.0f} s)", ""]
    lines.append(f"{'CHECK':<{name_w}}  {'STATUS':<{status_w}}  {'TIME':>6}  SUMMARY")
    for name, status, duration, summary in rows:
        wrapped = textwrap.wrap(summary, summary_w) or [""]
        lines.append(f"{name:<{name_w}}  {status:<{status_w}}  {duration:>6}  {wrapped[0]}")
        lines += [" " * (name_w + status_w + 12) + more for more in wrapped[1:]]
    verdict = assessment.verdict
    lines += ["", f"VERDICT: {verdict.headline}"]
    if assessment.interrupted:
        from chat.assessment_blocks import interrupted_text

        lines.append(_wrap(interrupted_text(assessment.interrupted, templates or renderer_for(None)), width, "  "))
    for match in verdict.patterns:
        root = f", start with {match.root_cause}" if match.root_cause else ""
        lines += ["", f"PATTERN: {match.title} ({match.scope}{root})"]
        lines += [_wrap(f"- {line}", width, "  ") for line in match.evidence]
        lines += [_wrap(f"> {line}", width, "  ") for line in match.advice]
    if verdict.recovery:
        lines += ["", "RECOVERY ORDER (one change at a time, re-assess after each):"]
        lines += [_wrap(f"{step.order}. {step.title}: {step.advice} [{', '.join(step.patterns)}]", width, "  ")
                  for step in verdict.recovery]
    if verdict.unchecked:
        lines += ["", "COULD NOT CHECK:"]
        lines += [_wrap(f"- {u.title} ({u.status}): {u.reason}", width, "  ") for u in verdict.unchecked]
    if verdict.notes:
        lines += ["", "NOTES:"]
        lines += [_wrap(f"- {note}", width, "  ") for note in verdict.notes]
    return "\n".join(lines)


def _progress(stream: TextIO) -> Callable[[CheckResult], None]:
    def report(result: CheckResult) -> None:
        print(f"  {STATUS_MARK[result.status]:<7} {result.title or result.name} ({result.duration_s:.1f}s)", file=stream, flush=True)

    return report


def assess_command(settings: Settings, as_json: bool, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the assessment now and print it; returns the exit code (0 healthy, 1 component, 2 cluster-wide)."""
    from service.assessment import assess_now

    out = out or sys.stdout
    err = err or sys.stderr
    print(f"Assessing cluster {settings.cluster_name} (budget {settings.assessment_budget_seconds:.0f} s)…", file=err, flush=True)
    try:
        assessment = assess_now(settings, on_check_done=_progress(err))
    except ClusterError as error:
        print(error.user_text(), file=err)
        return 3
    print(assessment.dumps(indent=2) if as_json else format_table(assessment, templates=renderer_for(settings.templates_dir)), file=out)
    return EXIT_CODES.get(assessment.verdict.scope, 1)
