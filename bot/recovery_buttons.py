"""The guided-recovery buttons: a step of a verdict's recovery plan, Undo, and re-applying a returned node's labels.

Each handler is one call into :mod:`service.recovery`, which checks the click against the incident's
latest assessment (a stale or forged button is answered, never acted on) and requests the step like
any risky action. One :class:`ButtonSpec` per step number (Slack wants distinct action ids within a
block), all with the same handler.
"""

from __future__ import annotations

from typing import Any

from bot.after_ack import ButtonSpec, clicked_by
from chat.recovery_blocks import ACTION_RESTORE_NODE, ACTION_UNDO, STEP_ACTION_IDS
from service import recovery
from service.context import Context
from service.lifecycle import Reply


def _on_step(services: Context, body: dict[str, Any]) -> Reply:
    return recovery.click_step(services, body, clicked_by(body))


def _on_undo(services: Context, body: dict[str, Any]) -> Reply:
    return recovery.click_undo(services, body, clicked_by(body))


def _on_restore(services: Context, body: dict[str, Any]) -> Reply:
    return recovery.click_restore(services, body, clicked_by(body))


def recovery_buttons() -> tuple[ButtonSpec, ...]:
    """The plan's step buttons, Undo, and *Re-apply labels and taints* on a node that registered again."""
    return (*(ButtonSpec(action_id, _on_step) for action_id in STEP_ACTION_IDS), ButtonSpec(ACTION_UNDO, _on_undo),
            ButtonSpec(ACTION_RESTORE_NODE, _on_restore))
