"""Block Kit views of guided recovery: the plan under a verdict, the delta after a step (and its early look, while the
rest of the checks run), the Undo button.

The plan's steps are one section (``templates/recovery_plan.slack.j2``) and one row of buttons: the
open steps of the lowest unrecovered layer, the primary one first and styled primary; steps of higher
layers are listed without a button and say what they wait for. A step button's value names the
assessment (its ``ref`` on the timeline), the step number, its kind and target: the service rebuilds
the plan from the stored assessment and refuses a value that does not match it
(:func:`incident.recovery.plan_step`), so the value is an address, never an order. Action ids are
constants here so listeners and views cannot disagree. Used by ``service.assessment`` and
``service.recovery``.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ContextBlock, MarkdownTextObject, SectionBlock

from chat.blocks import LABELS
from chat.escape import truncate
from incident.recovery import MAX_STEPS, Delta, EarlyDelta, PlanStep, RecoveryPlan
from incident.templates import TemplateRenderer

STEP_ACTION_PREFIX = "recovery_step_"
"""``recovery_step_<n>``: Slack wants distinct action ids within a block, so one per step number."""
ACTION_UNDO = "recovery_undo"
SEPARATOR = "|"
BUTTON_TEXT_LIMIT = 75
VALUE_LIMIT = 2000


def step_action_id(number: int) -> str:
    return f"{STEP_ACTION_PREFIX}{number}"


STEP_ACTION_IDS: tuple[str, ...] = tuple(step_action_id(n) for n in range(1, MAX_STEPS + 1))


@dataclass(frozen=True)
class StepButton:
    """What a plan button's value says: which assessment, which step, and the step's kind and target."""

    ref: str
    number: int
    kind: str
    target: str

    def value(self) -> str:
        return SEPARATOR.join((self.ref, str(self.number), self.kind, self.target))[:VALUE_LIMIT]

    @classmethod
    def parse(cls, value: str) -> "StepButton | None":
        """``None`` for a value of the wrong shape (garbled or forged)."""
        parts = value.split(SEPARATOR)
        if len(parts) != 4 or not parts[1].isdigit() or not all(parts):
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])


def _md(text: str, limit: int = 3000) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate(text, limit))


def _button(plan: RecoveryPlan, step: PlanStep, templates: TemplateRenderer) -> ButtonElement:
    primary = plan.primary is not None and plan.primary.number == step.number
    label = truncate(templates.macro_exact(LABELS, "step_button", step=step), BUTTON_TEXT_LIMIT)
    return ButtonElement(text=label, action_id=step_action_id(step.number),
                         value=StepButton(plan.ref, step.number, step.kind, step.target).value(),
                         style="primary" if primary else None)


def plan_blocks(plan: RecoveryPlan, templates: TemplateRenderer) -> list[Block]:
    """The plan's steps and the buttons of the steps that may run now (nothing for an empty plan)."""
    if not plan.steps:
        return []
    blocks: list[Block] = [SectionBlock(text=_md(templates.render("recovery_plan.slack.j2", plan=plan)))]
    offered = plan.offered()
    if offered:
        buttons = [_button(plan, step, templates) for step in offered]
        blocks.append(ActionsBlock(block_id=f"recovery_plan:{plan.ref}", elements=buttons))
    return blocks


def delta_blocks(delta: Delta, step: PlanStep, action_id: str, templates: TemplateRenderer, *,
                 undo: str = "", undo_note: str = "") -> list[Block]:
    """What the step changed, at the top of the verdict that follows it; an Undo button when it made things worse."""
    text = templates.render("recovery_delta.slack.j2", delta=delta, step=step, action_id=action_id, undo=undo,
                            undo_note=undo_note)
    blocks: list[Block] = [SectionBlock(text=_md(text))]
    if delta.worse and undo:
        blocks.append(undo_row(action_id, undo, templates))
    return blocks


EARLY_BLOCK_PREFIX = "recovery_early:"
"""``block_id`` of the early look's section in a progress message (the bench and the tests find it by it)."""


def early_delta_blocks(early: EarlyDelta, number: int, action_id: str, templates: TemplateRenderer) -> list[Block]:
    """The early look after a step, on top of the progress message while the other checks run (marked partial)."""
    text = templates.render("recovery_early_delta.slack.j2", early=early, number=number)
    return [SectionBlock(block_id=f"{EARLY_BLOCK_PREFIX}{action_id}", text=_md(text))]


def undo_row(action_id: str, undo: str, templates: TemplateRenderer) -> ActionsBlock:
    """One Undo button; its value is the id of the action to undo (the inverse is read from Redis)."""
    label = truncate(templates.macro_exact(LABELS, "undo_button", undo=undo), BUTTON_TEXT_LIMIT)
    return ActionsBlock(block_id=f"recovery_undo:{action_id}", elements=[ButtonElement(
        text=label, action_id=ACTION_UNDO, value=action_id, style="danger")])


def note(text: str) -> ContextBlock:
    return ContextBlock(elements=[_md(text, 2000)])


ACTION_RESTORE_NODE = "recovery_restore_node"
"""*Re-apply labels and taints* on a node that registered again; the value is the node's name (the labels
and taints are read from what the bot recorded when it deleted the node, never from the button)."""


def restore_blocks(text: str, deleted: str, registered: str, templates: TemplateRenderer) -> list[Block]:
    """The "node registered again" message with its *Re-apply labels and taints* button; the value names the
    deleted node and, for a replacement, the node that registered (``old|new``)."""
    value = deleted if registered == deleted else f"{deleted}{SEPARATOR}{registered}"
    return [SectionBlock(text=_md(text)), ActionsBlock(block_id=f"recovery_restore:{registered}", elements=[
        ButtonElement(text=templates.macro_exact(LABELS, "restore_button"), action_id=ACTION_RESTORE_NODE, value=value,
                      style="primary")])]


def restore_target(value: str) -> tuple[str, str]:
    """``(deleted node, node to restore)`` from a *Re-apply labels and taints* value."""
    deleted, _, registered = value.partition(SEPARATOR)
    return deleted, registered or deleted
