"""Escaping of user-supplied text before the bot posts it (Slack mrkdwn control characters).

Slack's rule: ``&``, ``<`` and ``>`` must be escaped as HTML entities. Without this a title such
as ``<!channel> API down`` would page the whole channel, and ``<@U123>`` would mention someone.
"""

from __future__ import annotations


def escape_mrkdwn(text: str) -> str:
    """Make user text inert in mrkdwn: no mentions, no links, no broadcast."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
