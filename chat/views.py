"""Modals: the status-update form, built with ``slack_sdk`` view models; its title, buttons and label are
macros of ``templates/block_labels.txt.j2`` (plain text)."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import InputBlock, PlainTextInputElement
from slack_sdk.models.views import View

from chat.blocks import LABELS
from incident.templates import TemplateRenderer

UPDATE_BLOCK = "update"
UPDATE_INPUT = "text"


def status_update_modal(callback_id: str, incident_id: str, templates: TemplateRenderer) -> View:
    """A one-field modal for a stakeholder status update."""
    def text(macro: str) -> str:
        return templates.macro_exact(LABELS, macro)

    return View(
        type="modal",
        callback_id=callback_id,
        private_metadata=incident_id,
        title=text("update_modal_title"),
        submit=text("update_modal_submit"),
        close=text("update_modal_close"),
        blocks=[InputBlock(
            block_id=UPDATE_BLOCK,
            label=text("update_modal_label"),
            element=PlainTextInputElement(action_id=UPDATE_INPUT, multiline=True, max_length=3000),
        )],
    )


def read_status_update(view: dict[str, Any]) -> str:
    """The text typed into :func:`status_update_modal`."""
    values = (view.get("state") or {}).get("values") or {}
    return str(((values.get(UPDATE_BLOCK) or {}).get(UPDATE_INPUT) or {}).get("value") or "")
