"""What the code asks of the Kubernetes API, derived from the source, in RBAC terms.

- Assessment (``kube/checks/*``, ``kube/assessor.py``): every API path literal (plain or f-string whose
  parts are module constants) becomes ``(verb, group, resource, namespace)``; collection paths are
  ``list``, paths naming an object ``get``; ``/readyz``-style paths are non-resource ``get``.
- Actions (``kube/actions/*.py``): every ``<name>.core.<method>`` / ``<name>.apps.<method>`` of the generated
  client becomes ``(verb, group, resource)`` by the client's naming (``patch_namespaced_deployment_scale``
  → ``patch apps deployments/scale``).
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NON_RESOURCE_PREFIXES = ("/readyz", "/livez", "/healthz", "/version", "/metrics", "/openapi")


@dataclass(frozen=True, order=True)
class Access:
    verb: str
    group: str  # "" for core; "*nonresource*" for non-resource URLs
    resource: str  # resource[/subresource], or the URL
    namespace: str | None = None  # None: cluster-wide (or cluster-scoped)


def _resolve(node: ast.AST, module: Any) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name) \
                    and isinstance(getattr(module, value.value.id, None), str):
                parts.append(getattr(module, value.value.id))
            else:
                return None
        return "".join(parts)
    return None


def api_paths(files: list[Path]) -> set[str]:
    """API path literals in ``files`` (docstrings and messages with spaces are not paths)."""
    paths: set[str] = set()
    for path in files:
        module = importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
        tree = ast.parse(path.read_text())
        pieces = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
        for node in ast.walk(tree):
            if id(node) in pieces:
                continue  # a fragment of an f-string, judged as part of the whole
            text = _resolve(node, module)
            if text is None or " " in text or "\n" in text:
                continue
            if text.startswith(("/api/", "/apis/")) or text in NON_RESOURCE_PREFIXES or \
                    re.fullmatch(r"/(readyz|livez|healthz)/[a-z0-9-]+", text):
                paths.add(text)
    return paths


def access_for_path(path: str) -> Access:
    if not path.startswith(("/api/", "/apis/")):
        return Access("get", "*nonresource*", path)
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    if len(rest) == 1:
        return Access("list", group, resource, namespace)
    sub = f"/{rest[2]}" if len(rest) > 2 else ""
    return Access("get", group, resource + sub, namespace)


def assessment_access() -> set[Access]:
    files = sorted((REPO / "kube" / "checks").glob("*.py")) + [REPO / "kube" / "assessor.py"]
    return {access_for_path(path) for path in api_paths([f for f in files if f.exists()])}


_VERBS = {"read": "get", "list": "list", "patch": "patch", "delete": "delete", "create": "create",
          "replace": "update", "connect": "create"}
_GROUPS = {"core": "", "apps": "apps", "policy": "policy", "coordination": "coordination.k8s.io"}
_SUBRESOURCES = ("scale", "eviction", "status", "binding", "log", "ephemeralcontainers")


def access_for_client_method(api: str, method: str) -> Access:
    """``("apps", "patch_namespaced_deployment_scale")`` → ``Access("patch", "apps", "deployments/scale")``."""
    verb_word, _, rest = method.partition("_")
    verb = _VERBS[verb_word]
    rest = rest.replace("namespaced_", "").replace("_for_all_namespaces", "")
    sub = ""
    for candidate in _SUBRESOURCES:
        if rest.endswith("_" + candidate):
            rest, sub = rest[: -len(candidate) - 1], "/" + candidate
    if verb == "delete" and rest.startswith("collection_"):
        verb, rest = "deletecollection", rest[len("collection_"):]
    resource = rest.replace("_", "") + "s"
    return Access(verb, _GROUPS[api], resource + sub)


def actions_access() -> set[Access]:
    found = set()
    for path in sorted((REPO / "kube" / "actions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and isinstance(node.value.value, ast.Name) \
                    and node.value.attr in _GROUPS and node.attr.split("_", 1)[0] in _VERBS:
                found.add(access_for_client_method(node.value.attr, node.attr))
    return found


def rules_access(documents: list[dict[str, Any]], role_kinds: tuple[str, ...] = ("ClusterRole", "Role")) -> set[Access]:
    """Every (verb, group, resource, namespace) the roles in ``documents`` grant (no wildcards allowed)."""
    granted = set()
    for doc in documents:
        if doc["kind"] not in role_kinds:
            continue
        namespace = doc["metadata"].get("namespace") if doc["kind"] == "Role" else None
        for rule in doc.get("rules") or []:
            verbs = rule["verbs"]
            assert "*" not in verbs, f"{doc['metadata']['name']}: wildcard verb"
            for verb in verbs:
                for url in rule.get("nonResourceURLs", []):
                    granted.add(Access(verb, "*nonresource*", url))
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        assert "*" not in (group, resource), f"{doc['metadata']['name']}: wildcard"
                        granted.add(Access(verb, group, resource, namespace))
    return granted


def covers(granted: set[Access], needed: Access) -> bool:
    if needed.group == "*nonresource*":
        return any(g.verb == needed.verb and g.group == needed.group and
                   (g.resource == needed.resource or (g.resource.endswith("*") and needed.resource.startswith(g.resource[:-1])))
                   for g in granted)
    cluster_wide = Access(needed.verb, needed.group, needed.resource, None)
    return cluster_wide in granted or (needed.namespace is not None and needed in granted)
