"""The cluster registry: which Kubernetes clusters one bot serves, how each is reached, who may act there.

Why data and not code: a team adds ``prod-us`` by adding four lines to a mounted YAML file
(``CLUSTERS_FILE``), and ``check-config`` lists every problem of that file at once (a duplicate name,
a name with shell or mention characters, an unknown mode, a context missing from its kubeconfig).

Two ways to reach a cluster:

- ``central``: the central workers talk to its apiserver through a kubeconfig context;
- ``agent``: ``k8s-incident-bot agent --cluster <name>`` runs inside that cluster with its own
  ServiceAccount, connects outbound to Redis only and consumes only that cluster's queues.

Without ``CLUSTERS_FILE`` the registry is the single cluster of the older settings (``CLUSTER_NAME``,
``KUBECONFIG``/``KUBE_CONTEXT``/``KUBE_IN_CLUSTER``): one central cluster, marked *implicit*, whose jobs
keep the queue names they always had. Per-cluster allowlists and impersonation maps fall back to the
global settings when a cluster does not set its own.

Pure: no Redis, Slack or Kubernetes here. :meth:`ClusterRegistry.settings_for` turns a cluster into the
:class:`~incident.settings.Settings` a job for it runs with, so everything downstream (the assessor,
the executors, the per-cluster action lock) reads ``cluster_name``, ``kube_context`` and the
allowlists as it always did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from incident.errors import ConfigError, IncidentBotError

if TYPE_CHECKING:
    from incident.settings import KubeIdentity, RunMode, Settings

ClusterMode = Literal["central", "agent"]
MODES: tuple[str, ...] = ("central", "agent")
ALL = "all"
"""``--cluster all``: every cluster of the registry (the fleet's verdict matrix); never a cluster's name."""

NAME_RULE = "1-40 characters of lowercase letters, digits and -, starting and ending with a letter or digit"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
"""A DNS label, shorter: safe in a queue name, a Redis key, a channel topic, a shell and mrkdwn (no ``<@…>``)."""
_SLACK_USER = re.compile(r"^[UW][A-Z0-9_]{2,}$")
_SLACK_GROUP = re.compile(r"^S[A-Z0-9_]{2,}$")


class UnknownCluster(IncidentBotError):
    """A command, button or job named a cluster the registry does not have."""


class ClusterRefused(IncidentBotError):
    """A command or button named another cluster than the channel or incident is bound to."""


def valid_name(name: str) -> bool:
    """Whether ``name`` may name a cluster (``all`` is reserved for the fleet)."""
    return bool(_NAME.match(name)) and name != ALL


class ClusterEntry(BaseModel):
    """One cluster as written in the registry file (validated; unknown keys are problems, not ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    mode: ClusterMode = "central"
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    description: str = Field(default="", max_length=200)
    etcd_endpoints: tuple[str, ...] | None = None
    action_allowed_users: tuple[str, ...] | None = None
    action_allowed_usergroups: tuple[str, ...] | None = None
    impersonate: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not valid_name(value):
            raise ValueError(f"{value!r} is not a cluster name: use {NAME_RULE} ('all' is reserved)")
        return value

    @field_validator("action_allowed_users")
    @classmethod
    def _users_shape(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        bad = [u for u in value or () if not _SLACK_USER.match(u)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} not Slack user IDs (U…)")
        return value

    @field_validator("action_allowed_usergroups")
    @classmethod
    def _groups_shape(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        bad = [g for g in value or () if not _SLACK_GROUP.match(g)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} not Slack user group IDs (S…)")
        return value


@dataclass(frozen=True)
class Cluster:
    """One cluster the bot serves."""

    name: str
    mode: ClusterMode = "central"
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    description: str = ""
    etcd_endpoints: tuple[str, ...] | None = None
    action_allowed_users: tuple[str, ...] | None = None
    """``None``: the global ``ACTION_ALLOWED_USERS``."""
    action_allowed_usergroups: tuple[str, ...] | None = None
    impersonate: dict[str, KubeIdentity] | None = None
    """``None``: the global ``KUBE_IMPERSONATE``."""

    @property
    def is_agent(self) -> bool:
        return self.mode == "agent"


@dataclass(frozen=True)
class ClusterRegistry:
    """Every cluster of this installation, the default first chosen when nothing names one."""

    clusters: tuple[Cluster, ...]
    default: str
    implicit: bool = False
    """Built from the single-cluster settings (no ``CLUSTERS_FILE``): its jobs keep the legacy queue names."""
    _by_name: dict[str, Cluster] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({cluster.name: cluster for cluster in self.clusters})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(cluster.name for cluster in self.clusters)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Cluster:
        """The cluster called ``name``; :class:`UnknownCluster` (listing the known ones) otherwise."""
        cluster = self._by_name.get(name)
        if cluster is None:
            from incident.command_errors import command_text
            from incident.kube_syntax import cut

            raise UnknownCluster(command_text("unknown_cluster", got=cut(name, 40)),
                                 hint=command_text("unknown_cluster_hint", names=self.names))
        return cluster

    def central(self) -> tuple[Cluster, ...]:
        """The clusters the central workers reach themselves."""
        return tuple(c for c in self.clusters if not c.is_agent)

    def uses_legacy_queues(self, name: str | None) -> bool:
        """Whether jobs for ``name`` go to the queues without a cluster suffix (the registry of one)."""
        return self.implicit or name is None

    def settings_for(self, settings: Settings, name: str) -> Settings:
        """The settings a job for cluster ``name`` runs with: its name, access, allowlists, impersonation.

        The registry of one hands back ``settings`` itself, whatever the name (jobs queued before the registry).
        """
        if self.implicit:
            return settings
        cluster = self.get(name)
        update: dict[str, object] = {"cluster_name": cluster.name}
        if not cluster.is_agent:
            update.update(kubeconfig=cluster.kubeconfig or settings.kubeconfig, kube_context=cluster.context,
                          kube_in_cluster=cluster.in_cluster)
        if cluster.etcd_endpoints is not None:
            update["etcd_endpoints"] = list(cluster.etcd_endpoints)
        if cluster.action_allowed_users is not None:
            update["action_allowed_users"] = list(cluster.action_allowed_users)
        if cluster.action_allowed_usergroups is not None:
            update["action_allowed_usergroups"] = list(cluster.action_allowed_usergroups)
        if cluster.impersonate is not None:
            update["kube_impersonate"] = dict(cluster.impersonate)
        return settings.model_copy(update=update)


def implicit_registry(settings: Settings) -> ClusterRegistry:
    """The registry of one: the cluster of ``CLUSTER_NAME`` and the single kubeconfig (or in-cluster)."""
    cluster = Cluster(name=settings.cluster_name, kubeconfig=settings.kubeconfig, context=settings.kube_context,
                      in_cluster=settings.kube_in_cluster)
    return ClusterRegistry((cluster,), settings.cluster_name, implicit=True)


def parse_registry(text: str, source: str = "CLUSTERS_FILE", *, default: str | None = None,
                   base_dir: Path | None = None) -> ClusterRegistry:
    """Parse a registry file's YAML; :class:`ConfigError` lists every problem found.

    The file is ``{default: <name>, clusters: [{name, mode, context, kubeconfig, …}, …]}``; ``default``
    (the argument) wins over the file's when given (``DEFAULT_CLUSTER``).
    """
    problems: list[str] = []
    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError([f"{source} is not valid YAML: {error}"]) from None
    if not isinstance(data, dict) or not isinstance(data.get("clusters"), list) or not data["clusters"]:
        raise ConfigError([f"{source} must be a mapping with a non-empty list `clusters:` "
                           "(each entry: name, mode central|agent, context or kubeconfig for central)"])
    unknown_top = sorted(set(data) - {"default", "clusters"})
    if unknown_top:
        problems.append(f"{source}: unknown key(s) {', '.join(unknown_top)} (expected default, clusters)")
    clusters: list[Cluster] = []
    seen: dict[str, int] = {}
    written: set[str] = set()
    for index, raw in enumerate(data["clusters"], start=1):
        where = f"{source} cluster #{index}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            where += f" ({raw['name']!r})"
            written.add(raw["name"])
        try:
            entry = ClusterEntry.model_validate(raw)
        except ValidationError as error:
            for item in error.errors(include_url=False, include_input=False):
                location = ".".join(str(part) for part in item["loc"]) or "entry"
                message = str(item["msg"]).removeprefix("Value error, ")
                if item["type"] == "literal_error":
                    message = f"unknown mode; use one of {', '.join(MODES)}"
                problems.append(f"{where}: {location}: {message}")
            continue
        if entry.name in seen:
            problems.append(f"{where}: duplicate name {entry.name!r} (also cluster #{seen[entry.name]})")
            continue
        seen[entry.name] = index
        problems += _entry_problems(entry, where, base_dir)
        clusters.append(_cluster(entry, base_dir, where, problems))
    chosen = default or data.get("default") or (clusters[0].name if clusters else None)
    if chosen is not None and chosen not in written:
        problems.append(f"{source}: the default cluster {chosen!r} is not in the list "
                        f"({', '.join(c.name for c in clusters)})")
    if problems:
        raise ConfigError(problems)
    assert chosen is not None
    return ClusterRegistry(tuple(clusters), str(chosen))


def _entry_problems(entry: ClusterEntry, where: str, base_dir: Path | None) -> list[str]:
    problems: list[str] = []
    if entry.mode == "agent" and (entry.kubeconfig or entry.context or entry.in_cluster):
        problems.append(f"{where}: an agent cluster is reached by its agent only; drop kubeconfig/context/in_cluster")
    if entry.mode == "central" and entry.kubeconfig is not None:
        path = _resolve(entry.kubeconfig, base_dir)
        if not path.exists():
            problems.append(f"{where}: kubeconfig {entry.kubeconfig} does not exist")
        elif entry.context:
            contexts = kubeconfig_contexts(path)
            if contexts is not None and entry.context not in contexts:
                problems.append(f"{where}: context {entry.context!r} is not in {entry.kubeconfig} "
                                f"(it has: {', '.join(contexts) or 'none'})")
    return problems


def _resolve(path: Path, base_dir: Path | None) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


def _cluster(entry: ClusterEntry, base_dir: Path | None, where: str, problems: list[str]) -> Cluster:
    from incident.settings import KubeIdentity

    impersonate: dict[str, KubeIdentity] | None = None
    if entry.impersonate is not None:
        impersonate = {}
        for user, identity in entry.impersonate.items():
            try:
                impersonate[str(user)] = KubeIdentity.model_validate(identity)
            except ValidationError:
                problems.append(f"{where}: impersonate[{user!r}] is not a user name or {{user, groups}}")
    return Cluster(name=entry.name, mode=entry.mode,
                   kubeconfig=_resolve(entry.kubeconfig, base_dir) if entry.kubeconfig else None,
                   context=entry.context, in_cluster=entry.in_cluster, description=entry.description,
                   etcd_endpoints=entry.etcd_endpoints, action_allowed_users=entry.action_allowed_users,
                   action_allowed_usergroups=entry.action_allowed_usergroups, impersonate=impersonate)


def kubeconfig_contexts(path: Path) -> list[str] | None:
    """The context names of a kubeconfig file (``None`` when it cannot be read as one)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    return [str(c.get("name")) for c in data.get("contexts") or [] if isinstance(c, dict)]


_CACHE: dict[tuple[object, ...], ClusterRegistry] = {}


def load_registry(settings: Settings) -> ClusterRegistry:
    """The registry of ``settings``: ``CLUSTERS_FILE`` when set (re-read when the file changes), else the one cluster."""
    path = settings.clusters_file
    if path is None:
        return implicit_registry(settings)
    path = path.expanduser()
    try:
        stat = path.stat()
        key: tuple[object, ...] = (str(path), stat.st_mtime_ns, stat.st_size, settings.default_cluster)
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([f"CLUSTERS_FILE {path} cannot be read: {error.strerror or error}"]) from None
    registry = parse_registry(text, f"CLUSTERS_FILE {path}", default=settings.default_cluster, base_dir=path.parent)
    _CACHE.clear()
    _CACHE[key] = registry
    return registry


def registry_problems(settings: Settings) -> list[str]:
    """Every problem of the registry ``settings`` name, including a central cluster without a kubeconfig to use.

    :func:`load_checked` adds them to the settings' own problems (``check-config`` and every process start).
    """
    try:
        registry = load_registry(settings)
    except ConfigError as error:
        return list(error.problems)
    if settings.kube_in_cluster or settings.kubeconfig is not None or Path("~/.kube/config").expanduser().exists():
        return []
    return [f"cluster {c.name!r} is central without its own kubeconfig, and KUBECONFIG is not set, KUBE_IN_CLUSTER is "
            "false and ~/.kube/config does not exist: give it `kubeconfig:` in CLUSTERS_FILE or set KUBECONFIG."
            for c in registry.central() if c.kubeconfig is None and not c.in_cluster]


def load_checked(mode: RunMode = "worker", **overrides: object) -> Settings:
    """:func:`~incident.settings.load_settings`, then the registry's problems: one :class:`ConfigError` listing all."""
    from incident.settings import load_settings

    try:
        settings = load_settings(mode, **overrides)
    except ConfigError as error:
        problems = list(error.problems)
        try:
            from incident.settings import Settings as _Settings

            partial = _Settings(**overrides)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - the settings' own problems are already listed
            raise ConfigError(problems) from None
        raise ConfigError(problems + [p for p in registry_problems(partial) if p not in problems]) from None
    problems = registry_problems(settings)
    if problems:
        raise ConfigError(problems)
    return settings
