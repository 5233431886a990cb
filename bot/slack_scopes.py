"""The OAuth bot scopes the bot needs, as data: per Web API method, per event, per feature.

The Slack app manifests under ``deploy/`` must request exactly the union of what the code uses; a test
(``tests/deploy/test_slack_manifest.py``) finds the methods the code calls and compares. The bot
works in public channels only (it creates public incident channels and is invited to the stakeholder
channel), so each entry lists the scope for public channels; the private-channel equivalent is noted
where one exists. Sources: each method's "Required scopes" on docs.slack.dev / api.slack.com.
"""

from __future__ import annotations

from collections.abc import Iterable

METHOD_SCOPES: dict[str, frozenset[str]] = {
    "auth.test": frozenset(),
    "chat.getPermalink": frozenset(),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    # Conversations API: scope by conversation type; public channels → channels:* (private: groups:*).
    "conversations.create": frozenset({"channels:manage"}),
    "conversations.setTopic": frozenset({"channels:manage"}),
    "conversations.setPurpose": frozenset({"channels:manage"}),
    "conversations.invite": frozenset({"channels:manage"}),
    "conversations.archive": frozenset({"channels:manage"}),
    "conversations.join": frozenset({"channels:join"}),
    "conversations.history": frozenset({"channels:history"}),
    "conversations.replies": frozenset({"channels:history"}),
    "conversations.info": frozenset({"channels:read"}),
    "conversations.members": frozenset({"channels:read"}),
    "conversations.list": frozenset({"channels:read"}),
    "files.getUploadURLExternal": frozenset({"files:write"}),
    "files.completeUploadExternal": frozenset({"files:write"}),
    "files.info": frozenset({"files:read"}),
    "pins.add": frozenset({"pins:write"}),
    "pins.remove": frozenset({"pins:write"}),
    "pins.list": frozenset({"pins:read"}),
    "reactions.add": frozenset({"reactions:write"}),
    "reactions.get": frozenset({"reactions:read"}),
    "usergroups.list": frozenset({"usergroups:read"}),
    "usergroups.users.list": frozenset({"usergroups:read"}),
    "users.info": frozenset({"users:read"}),
    "users.list": frozenset({"users:read"}),
    "views.open": frozenset(),
    "views.push": frozenset(),
    "views.update": frozenset(),
    "bookmarks.add": frozenset({"bookmarks:write"}),
}
"""Web API method → bot scopes it requires (for public channels)."""

EVENT_SCOPES: dict[str, frozenset[str]] = {
    "message.channels": frozenset({"channels:history"}),
    "reaction_added": frozenset({"reactions:read"}),
    "reaction_removed": frozenset({"reactions:read"}),
    "pin_added": frozenset({"pins:read"}),
    "pin_removed": frozenset({"pins:read"}),
    "app_mention": frozenset({"app_mentions:read"}),
    "member_joined_channel": frozenset({"channels:read"}),
}
"""Events API subscription (bot event) → bot scopes it requires."""

SLASH_COMMAND_SCOPES = frozenset({"commands"})
"""Any slash command needs ``commands``."""

BOLT_EVENT_TO_SUBSCRIPTION: dict[str, str] = {
    "message": "message.channels",
}
"""Bolt listens to ``message``; public-channel messages arrive through the ``message.channels`` subscription."""


class UnknownSlackMethod(KeyError):
    """A method the code calls has no entry in :data:`METHOD_SCOPES`: look it up and add it."""


def scopes_for_methods(methods: Iterable[str]) -> set[str]:
    """Union of the scopes the given Web API methods need; raises :class:`UnknownSlackMethod` for a new one."""
    needed: set[str] = set()
    for method in methods:
        if method not in METHOD_SCOPES:
            raise UnknownSlackMethod(f"{method}: add its required bot scopes to bot/slack_scopes.py METHOD_SCOPES")
        needed |= METHOD_SCOPES[method]
    return needed


def subscriptions_for_events(bolt_events: Iterable[str]) -> set[str]:
    """Event subscriptions for the event types Bolt listens to (``message`` → ``message.channels``)."""
    return {BOLT_EVENT_TO_SUBSCRIPTION.get(event, event) for event in bolt_events}


def scopes_for_events(subscriptions: Iterable[str]) -> set[str]:
    """Union of the scopes the given event subscriptions need."""
    needed: set[str] = set()
    for event in subscriptions:
        if event not in EVENT_SCOPES:
            raise UnknownSlackMethod(f"event {event}: add its required bot scopes to bot/slack_scopes.py EVENT_SCOPES")
        needed |= EVENT_SCOPES[event]
    return needed


def required_bot_scopes(methods: Iterable[str], bolt_events: Iterable[str], slash_commands: bool = True) -> set[str]:
    """Every bot scope the app needs: its methods, its event subscriptions and its slash command."""
    return (scopes_for_methods(methods) | scopes_for_events(subscriptions_for_events(bolt_events))
            | (set(SLASH_COMMAND_SCOPES) if slash_commands else set()))
