"""Block Kit of the status cadence and escalation prompts, built with ``slack_sdk`` models.

Texts come from templates (already escaped; the button labels from ``templates/block_labels.txt.j2``); this
module arranges them and their buttons. The
status prompt and the overdue reminder reuse :data:`chat.blocks.ACTION_POST_UPDATE`, which opens
the status-update modal. Escalation buttons carry a :class:`PromptRef` naming the incident, the
rule and the prompt's due time, so a decision always refers to one prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ContextBlock, MarkdownTextObject, SectionBlock

from chat.blocks import ACTION_POST_UPDATE, LABELS
from chat.escape import truncate
from incident.templates import TemplateRenderer

ACTION_ESCALATION_ESCALATE = "escalation_escalate"
ACTION_ESCALATION_SNOOZE = "escalation_snooze"
ACTION_ESCALATION_DISMISS = "escalation_dismiss"
ESCALATION_ACTIONS = (ACTION_ESCALATION_ESCALATE, ACTION_ESCALATION_SNOOZE, ACTION_ESCALATION_DISMISS)


@dataclass(frozen=True)
class PromptRef:
    """Which prompt a button belongs to: ``<incident>|<rule>|<due epoch>``."""

    incident_id: str
    rule: str
    due_epoch: int

    def encode(self) -> str:
        return f"{self.incident_id}|{self.rule}|{self.due_epoch}"

    @classmethod
    def decode(cls, value: str) -> "PromptRef":
        """Inverse of :meth:`encode`; ValueError for anything else."""
        parts = value.split("|")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise ValueError(f"not an escalation prompt reference: {value!r}")
        return cls(parts[0], parts[1], int(parts[2]))


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, 3000)))


def status_prompt_blocks(text: str, incident_id: str, templates: TemplateRenderer, *,
                         kind: str = "status_prompt") -> list[Block]:
    """The status prompt or overdue reminder, with the *Post update* button."""
    return [
        _section(text),
        ActionsBlock(block_id=f"{kind}:{incident_id}", elements=[
            ButtonElement(text=templates.macro_exact(LABELS, "post_update_button"), action_id=ACTION_POST_UPDATE,
                          value=incident_id, style="primary"),
        ]),
    ]


def escalation_prompt_blocks(text: str, ref: PromptRef, templates: TemplateRenderer, *,
                             snooze_minutes: int) -> list[Block]:
    """An escalation prompt with Escalate / Snooze / Dismiss."""
    value = ref.encode()
    return [
        _section(text),
        ActionsBlock(block_id=f"escalation:{ref.rule}:{ref.due_epoch}", elements=[
            ButtonElement(text=templates.macro_exact(LABELS, "escalate_button"), action_id=ACTION_ESCALATION_ESCALATE,
                          value=value, style="danger"),
            ButtonElement(text=templates.macro_exact(LABELS, "snooze_button", minutes=snooze_minutes),
                          action_id=ACTION_ESCALATION_SNOOZE, value=value),
            ButtonElement(text=templates.macro_exact(LABELS, "dismiss_button"), action_id=ACTION_ESCALATION_DISMISS,
                          value=value),
        ]),
    ]


def escalation_decided_blocks(prompt_text: str, decision_text: str) -> list[Block]:
    """The prompt once decided: its text, and the decision where the buttons were."""
    return [_section(prompt_text), ContextBlock(elements=[MarkdownTextObject(text=truncate(decision_text, 3000))])]


def text_blocks(text: str) -> list[Block]:
    """One section (stakeholder pings, announcements)."""
    return [_section(text)]
