"""The Web API methods the emulator implements, one module per family.

:func:`build_registry` assembles them into a fresh :class:`MethodRegistry`; each module exposes
``register(registry)``, so a test can build a registry with only the families it needs.
"""

from __future__ import annotations

from sandbox.slack.methods import apps, chat, conversations, files, identity, views
from sandbox.slack.webapi import MethodRegistry

FAMILIES = (identity, conversations, chat, files, views, apps)


def build_registry() -> MethodRegistry:
    """A registry holding every implemented method."""
    registry = MethodRegistry()
    for family in FAMILIES:
        family.register(registry)
    return registry
