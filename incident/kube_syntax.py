"""Kubernetes' syntax for what a person types: object names, namespaces, label keys and values (pure).

The grammar of the risky actions (:mod:`incident.action_kinds`) validates every target here before
anything is stored, so a typo is answered at once with the rule it broke and nothing changes. The
rules are the API server's own (``IsDNS1123Subdomain``, ``IsDNS1123Label``, ``IsQualifiedName``,
``IsValidLabelValue``). Messages are Slack mrkdwn, macros of ``templates/command_errors.slack.j2``: what the
user typed is cut first (:func:`cut`), then made inert by the template, so a pasted ``<!channel>`` pings
nobody and an ``&amp;`` is never cut in half.
"""

from __future__ import annotations

import re

from incident.command_errors import command_error

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
"""The name part of a label key, and a non-empty label value."""
SHOWN_LIMIT = 60


def cut(value: str, limit: int = SHOWN_LIMIT) -> str:
    """User input to quote in a message, cut to ``limit`` characters (a template escapes it)."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def check_name(value: str, what: str) -> str:
    """A DNS-1123 subdomain (node, pod, deployment names): lowercase alphanumerics, ``-`` and ``.``, ≤ 253."""
    if len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        raise command_error("invalid_name", got=cut(value), what=what)
    return value


def check_namespace(value: str) -> str:
    """A DNS-1123 label: lowercase alphanumerics and ``-``, ≤ 63."""
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        raise command_error("invalid_namespace", got=cut(value))
    return value


def parse_namespaced(token: str, what: str) -> str:
    """``<namespace>/<name>`` → the same string, validated."""
    namespace, slash, name = token.partition("/")
    if not slash or not namespace or not name:
        raise command_error("not_namespaced", what=what, got=cut(token))
    return f"{check_namespace(namespace)}/{check_name(name, what)}"


def split_target(target: str) -> tuple[str | None, str]:
    """``ns/name`` → ``("ns", "name")``; a node name → ``(None, name)``."""
    namespace, slash, name = target.partition("/")
    return (namespace, name) if slash else (None, target)


def check_label_key(key: str) -> str:
    """A label key: an optional DNS-1123 subdomain prefix (≤ 253) and ``/``, then a name of ≤ 63 characters
    (alphanumerics, ``-``, ``_``, ``.``; starting and ending alphanumeric)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        raise command_error("invalid_label_prefix", got=cut(key))
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        raise command_error("invalid_label_name", got=cut(key))
    return key


def check_label_value(value: str, key: str) -> str:
    """A label value: empty, or ≤ 63 characters of alphanumerics, ``-``, ``_``, ``.``, starting and ending
    alphanumeric."""
    if value and (len(value) > 63 or not QUALIFIED_NAME.match(value)):
        raise command_error("invalid_label_value", got=cut(value), key=cut(key))
    return value
