"""Escaping of user-supplied text before the bot posts it (Slack mrkdwn control characters).

Slack's rule: ``&``, ``<`` and ``>`` must be escaped as HTML entities. Without this a title such
as ``<!channel> API down`` would page the whole channel, and ``<@U123>`` would mention someone.
"""

from __future__ import annotations


def escape_mrkdwn(text: str) -> str:
    """Make user text inert in mrkdwn: no mentions, no links, no broadcast."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


ENTITY_MAX = len("&amp;")


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis.

    Safe on mrkdwn that is already escaped: the cut never splits an entity (``&amp;``, ``&lt;``, ``&gt;``)
    or a control sequence (``<@U123>``, ``<#C123>``, ``<https://…|label>``) — half of one would show as
    garbage or turn into a broken link — it moves back to before it instead.
    """
    if len(text) <= limit:
        return text
    cut = max(0, limit - 1)
    amp = text.rfind("&", max(0, cut - ENTITY_MAX + 1), cut)
    if amp != -1 and ";" not in text[amp:cut]:
        cut = amp
    opening = text.rfind("<", 0, cut)
    if opening != -1 and text.rfind(">", opening, cut) == -1:
        cut = opening
    return text[:cut] + "…"
