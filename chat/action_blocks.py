"""Block Kit views of risky actions: the confirmation message and what it becomes as the action moves.

Texts come from ``templates/action_*.slack.j2`` (escaped) and the labels of its buttons and dialogs from
``templates/block_labels.txt.j2`` (plain text); this module only arranges them and fits
them into Block Kit's limits without cutting an ``&amp;`` or a ``<@U…>`` in half (:func:`chat.escape.truncate`). The
confirmation message carries Confirm (or *Proceed anyway* when the recovery-order guard holds the
action back) and Cancel, each with the action id as value; the same message is later replaced by
its queued / running / final state without buttons. Action ids are constants here so listeners and
views cannot disagree. Used by ``service.actions`` and ``service.action_requests``.
"""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from chat.blocks import LABELS
from chat.escape import truncate
from chat.recovery_blocks import undo_row
from incident.actions import ActionRequest
from incident.templates import TemplateRenderer

ACTION_CONFIRM = "risky_action_confirm"
ACTION_PROCEED_ANYWAY = "risky_action_proceed_anyway"
ACTION_CANCEL = "risky_action_cancel"


SECTION_LIMIT = 3000
CONTEXT_LIMIT = 2000
DIALOG_LIMIT = 300


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, SECTION_LIMIT)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=truncate(text, CONTEXT_LIMIT))])


def confirmation(action: ActionRequest, templates: TemplateRenderer, now: datetime) -> tuple[str, list[Block]]:
    """The message asking for confirmation: what will change, buttons, expiry. Returns (text, blocks)."""
    body = templates.render("action_confirmation.slack.j2", action=action)
    state = templates.render("action_state.slack.j2", action=action, position=None)
    def label(macro: str) -> str:
        return templates.macro_exact(LABELS, macro)

    if action.guard and not action.guard_ack_by:
        dialog_text = templates.render("action_dialog.slack.j2", action=action, which="proceed_anyway")
        go = ButtonElement(text=label("proceed_anyway_button"), action_id=ACTION_PROCEED_ANYWAY, value=action.id,
                           style="danger",
                           confirm=ConfirmObject(title=label("proceed_anyway_title"),
                                                 text=truncate(dialog_text, DIALOG_LIMIT),
                                                 confirm=label("proceed_anyway_confirm"), deny=label("dialog_deny")))
    else:
        dialog = None
        if action.destructive:
            dialog_text = templates.render("action_dialog.slack.j2", action=action, which="destructive")
            dialog = ConfirmObject(title=label("destructive_title"), text=truncate(dialog_text, DIALOG_LIMIT),
                                   confirm=label("destructive_confirm"), deny=label("dialog_deny"))
        go = ButtonElement(text=label("confirm_button"), action_id=ACTION_CONFIRM, value=action.id,
                           style="danger" if action.destructive else "primary", confirm=dialog)
    blocks: list[Block] = [
        _section(body),
        _context(state),
        ActionsBlock(block_id=f"risky_action:{action.id}", elements=[
            go, ButtonElement(text=label("cancel_button"), action_id=ACTION_CANCEL, value=action.id),
        ]),
    ]
    return templates.render("action_fallback.slack.j2", action=action, which="confirm"), blocks


def state(action: ActionRequest, templates: TemplateRenderer, position: int | None = None) -> tuple[str, list[Block]]:
    """The confirmation message after confirmation: the request and its current state, no buttons."""
    body = templates.render("action_confirmation.slack.j2", action=action)
    line = templates.render("action_state.slack.j2", action=action, position=position)
    blocks: list[Block] = [_section(body), _context(line)]
    return templates.render("action_fallback.slack.j2", action=action, which="state"), blocks


def outcome(action: ActionRequest, templates: TemplateRenderer, *, undo: str = "",
            undo_note: str = "") -> tuple[str, list[Block]]:
    """The channel message when an action ended (succeeded, failed or outcome unknown).

    ``undo``: the recorded inverse's description (an *Undo* button, ``chat.recovery_blocks``); ``undo_note``:
    why a succeeded action has none, said instead.
    """
    text = templates.render("action_outcome.slack.j2", action=action)
    blocks: list[Block] = [_section(text)]
    if undo:
        blocks.append(undo_row(action.id, undo, templates))
    elif undo_note and action.status == "succeeded":
        blocks.append(_context(templates.render("recovery_no_undo.slack.j2", action_id=action.id, note=undo_note)))
    return templates.render("action_fallback.slack.j2", action=action, which="outcome"), blocks


def rejected(action: ActionRequest, reason: str, templates: TemplateRenderer) -> tuple[str, list[Block]]:
    text = templates.render("action_rejected.slack.j2", action=action, reason=reason)
    return text, [_section(text)]


def progress(action: ActionRequest, text: str, templates: TemplateRenderer) -> str:
    return templates.render("action_progress.slack.j2", action=action, text=text)


def queue_listing(cluster: str, rows: list[tuple[int, ActionRequest]], templates: TemplateRenderer) -> str:
    return templates.render("action_queue.slack.j2", cluster=cluster, rows=rows)
