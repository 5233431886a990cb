"""The incident lifecycle (service layer): open, status, severity, roles, updates, mitigate, resolve.

Each function does the Slack side (channel, topic, header, announcements) around the core's state
change, and returns the ephemeral reply for the person who asked. The state change is written
before any optional Slack step, so a Slack failure afterwards never loses the incident; such
failures are recorded on the timeline and reported to the user.

Run again after a crash (a replay from the inbox, :mod:`service.inbox`), a function adds nothing twice:
its timeline entries, state changes and outbox posts carry identities from :func:`service.inbox.effect_id`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from chat.channel_names import incident_channel_name
from service.context import Context
from chat.escape import truncate
from chat.blocks import header_fallback_text, incident_header, text_section
from incident.errors import IncidentBotError, SlackApiError
from incident.model import Incident, Status
from persistence.store import OPEN_CLAIM_TTL_SECONDS, PENDING
from incident.timeline import EntryKind
from service import alert_links, inbox, jobs, reminders

log = logging.getLogger(__name__)

MAX_NAME_ATTEMPTS = 20
INVITE_BATCH = 100


@dataclass(frozen=True)
class Reply:
    """What the requester is told (ephemeral)."""

    text: str


def open_dedupe_key(user_id: str, severity: str, title: str, cluster: str = "") -> str:
    """Same person, same title and severity (and cluster, in a registry of many) within the claim window → the same incident."""
    normalized = " ".join(title.lower().split())
    where = f"\x00{cluster}" if cluster else ""
    return hashlib.sha256(f"{user_id}\x00{severity}\x00{normalized}{where}".encode()).hexdigest()[:32]


def open_incident(services: Context, *, user_id: str, severity: str, title: str, cluster: str | None = None) -> Reply:
    """Create the channel, store the incident, set it up and announce it (idempotent per request).

    ``cluster``: the registered cluster the incident belongs to (default: the registry's default);
    an unknown name is refused before anything is created.
    """
    from incident.clusters import load_registry

    clusters = load_registry(services.settings)
    cluster = clusters.get(cluster or clusters.default).name
    store = services.store
    dedupe = open_dedupe_key(user_id, severity, title, "" if clusters.implicit else cluster)
    token = inbox.effect_id("open")  # a replay after a crash finds its first run's claim, channel, incident
    earlier = store.claim_open(dedupe, token)
    if earlier == PENDING:
        return Reply(services.templates.render("lifecycle_reply.slack.j2", what="opening"))
    if earlier is not None:
        existing = store.get(earlier)
        if token is None or existing.extra.get("open_request") != token:
            return Reply(services.templates.render("lifecycle_reply.slack.j2", what="already_open", incident=existing))
        incident = existing  # this request's own, stored by its first run: finish the set-up
    else:
        try:
            now = services.clock.now()
            incident_id = store.next_id(now)
            channel_id, channel_name = _create_channel(services, now, title, token)
            incident = Incident(
                id=incident_id, title=title, severity=severity, channel_id=channel_id, channel_name=channel_name,
                opened_by=user_id, opened_at=now, commander=user_id, extra={"open_request": token} if token else {},
                cluster=cluster,
            )
            store.create(incident, dedupe_key=dedupe)
        except BaseException:
            store.release_open_claim(dedupe)
            raise
    reminders.start_schedule(services.settings, services.redis, incident.id, clock=services.clock, quiet=True)
    problems = _set_up_channel(services, incident)
    return Reply(services.templates.render("lifecycle_reply.slack.j2", what="opened", incident=incident, problems=problems))


def open_incident_from_alerts(services: Context, *, dedupe_key: str, severity: str, title: str, cluster: str,
                              opened_by: str, commander: str | None) -> Incident:
    """Open an incident for an Alertmanager group (``service.alerts``): by itself (``opened_by`` is
    ``alertmanager``, no commander yet) or from a triage click (the person who clicked).

    The one place an alert-opened incident is made. ``cluster`` is the value of the rules' cluster label
    (``AlertGroup.cluster``): the incident belongs to that registered cluster; a value the registry does not
    know (or none) gives the default cluster, the label's value staying in ``extra`` as ``alert_cluster``
    either way, so an alert is never dropped over its label. ``dedupe_key`` (the group's)
    makes a retried job find the incident its first attempt made, the way a repeated ``/k8s incident
    open`` does; a claim left ``pending`` by an attempt that died is taken over (the caller holds the
    group's lock, so no other attempt is running).
    """
    from incident.clusters import load_registry

    clusters = load_registry(services.settings)
    own_cluster = cluster if cluster and cluster in clusters else clusters.default
    store = services.store
    earlier = store.claim_open(dedupe_key)
    if earlier == PENDING:
        store.release_open_claim(dedupe_key)
        earlier = store.claim_open(dedupe_key)
    if earlier not in (None, PENDING):
        return store.get(str(earlier))
    try:
        now = services.clock.now()
        incident_id = store.next_id(now)
        channel_id, channel_name = _create_channel(services, now, title)
        incident = Incident(
            id=incident_id, title=title, severity=severity, channel_id=channel_id, channel_name=channel_name,
            opened_by=opened_by, opened_at=now, commander=commander,
            extra={"alert_cluster": cluster} if cluster else {}, cluster=own_cluster,
        )
        store.create(incident, dedupe_key=dedupe_key)
    except BaseException:
        store.release_open_claim(dedupe_key)
        raise
    reminders.start_schedule(services.settings, services.redis, incident.id, clock=services.clock, quiet=True)
    _set_up_channel(services, incident, invite_opener=commander is not None)
    return incident


def _create_channel(services: Context, now: object, title: str, token: str | None = None) -> tuple[str, str]:
    """A new channel for the incident; ``token`` (a replayable request): the name being created is recorded
    first, and a replay adopts the channel its first run created (or was creating when it died)."""
    prefix = services.settings.incident_channel_prefix
    name_key = services.keys.open_channel_name(token) if token else None
    if name_key is not None and inbox.replaying():
        created = services.redis.get(name_key)
        adopted = _own_unused_channel(services, created.decode()) if created else None
        if adopted is not None:
            return adopted
    for attempt in range(1, MAX_NAME_ATTEMPTS + 1):
        name = incident_channel_name(prefix, now, title, suffix=attempt if attempt > 1 else None)  # type: ignore[arg-type]
        if name_key is not None:
            services.redis.set(name_key, name, ex=OPEN_CLAIM_TTL_SECONDS)
        try:
            body = services.slack.call("conversations.create", name=name, is_private=False)
        except SlackApiError as error:
            if error.code == "name_taken":
                continue
            raise
        channel = body["channel"]
        return str(channel["id"]), str(channel["name"])
    raise IncidentBotError(services.refusal("no_free_channel_name", attempts=MAX_NAME_ATTEMPTS),
                           hint=services.refusal("no_free_channel_name_hint"))


def _own_unused_channel(services: Context, name: str) -> tuple[str, str] | None:
    """The channel ``name`` if the bot created it and no incident has it (a dead first run's), else ``None``."""
    bot = _bot_user_id(services)
    cursor = ""
    while True:
        body = services.slack.call("conversations.list", types="public_channel", exclude_archived=True, limit=999,
                                   **({"cursor": cursor} if cursor else {}))
        for channel in body.get("channels", []):
            if channel.get("name") == name:
                mine = channel.get("creator") == bot and services.store.find_by_channel(str(channel["id"])) is None
                return (str(channel["id"]), name) if mine else None
        cursor = str((body.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            return None


def _set_up_channel(services: Context, incident: Incident, *, invite_opener: bool = True) -> list[str]:
    """Topic, purpose, invitations, pinned header, stakeholder announcement; returns failures.

    ``invite_opener=False``: the opener is not a Slack user (Alertmanager opened it)."""
    problems: list[str] = []
    slack, store = services.slack, services.store
    timeline = store.timeline(incident.id)

    def attempt(step: str, action: object) -> object | None:
        try:
            return action()  # type: ignore[operator]
        except SlackApiError as error:
            problems.append(f"{step}: {error.code}")
            timeline.append(EntryKind.BOT_ERROR, "bot", {"step": step, "error": error.code}, at=services.clock.now())
            log.warning("incident %s: %s failed: %s", incident.id, step, error.code)
            return None

    templates = services.templates
    attempt("set topic", lambda: slack.call("conversations.setTopic", channel=incident.channel_id,
                                            topic=truncate(templates.render("incident_topic.slack.j2", incident=incident), 250)))
    attempt("set purpose", lambda: slack.call("conversations.setPurpose", channel=incident.channel_id,
                                              purpose=truncate(templates.render("incident_purpose.slack.j2", incident=incident), 250)))
    invitees = _responders(services, attempt) | ({incident.opened_by} if invite_opener else set())
    invitees.discard(_bot_user_id(services))
    if invitees:
        attempt("invite responders", lambda: _invite(services, incident.channel_id, sorted(invitees)))
    header_ts: object = incident.header_ts  # set already when a replay finishes a dead first run's set-up
    if not header_ts:
        header_ts = attempt("post header", lambda: slack.post_message(
            incident.channel_id, header_fallback_text(incident, templates), incident_header(incident, templates),
            post_id=inbox.effect_id("header"), look_first=inbox.replaying()))
    if isinstance(header_ts, str):
        store.set_fields(incident.id, {"header_ts": header_ts})
        attempt("pin header", lambda: _pin(services, incident.channel_id, header_ts))
    stakeholders = services.settings.stakeholder_channel
    if stakeholders:
        # Through the outbox: in an alert storm the stakeholder channel takes about one post a second, and
        # the incident's own set-up must not wait for it. The post's ts becomes the incident's stakeholder
        # thread when it is sent; later replies, queued behind it in the same channel, read it then.
        text = templates.render("incident_announcement.slack.j2", incident=incident)
        services.outbox.post(stakeholders, text, text_section(text), incident_id=incident.id,
                             record_ts_as="stakeholder_ts")
    return problems


def _pin(services: Context, channel_id: str, ts: str) -> None:
    try:
        services.slack.call("pins.add", channel=channel_id, timestamp=ts)
    except SlackApiError as error:
        if error.code != "already_pinned":  # a replay pinning what its first run pinned
            raise


def _bot_user_id(services: Context) -> str | None:
    cached = services.redis.get(services.keys.bot_user_id())
    if cached:
        return cached.decode()
    try:
        user_id = str(services.slack.call("auth.test")["user_id"])
    except SlackApiError:
        return None
    services.redis.set(services.keys.bot_user_id(), user_id, ex=3600)
    return user_id


def _responders(services: Context, attempt: object) -> set[str]:
    users = set(services.settings.responder_users)
    group = services.settings.responder_usergroup
    if group:
        body = attempt("list responder group", lambda: services.slack.call("usergroups.users.list", usergroup=group))  # type: ignore[operator]
        if isinstance(body, dict):
            users |= set(body.get("users", []))
    return users


def _invite(services: Context, channel_id: str, users: list[str]) -> None:
    """Invite in batches of 100 (Slack's per-call limit); people already there are fine."""
    for start in range(0, len(users), INVITE_BATCH):
        try:
            services.slack.call("conversations.invite", channel=channel_id,
                                users=",".join(users[start:start + INVITE_BATCH]))
        except SlackApiError as error:
            if error.code != "already_in_channel":
                raise


def incident_status(services: Context, incident: Incident) -> Reply:
    elapsed = services.clock.now() - incident.opened_at
    entries = len(services.store.timeline(incident.id))
    return Reply(services.templates.render("incident_status.slack.j2", incident=incident, elapsed=elapsed, entries=entries,
                                           alerts=alert_links.linked_alerts(services, incident)))


def change_severity(services: Context, incident: Incident, severity: str, user_id: str) -> Reply:
    change_id = inbox.effect_id("change")
    timeline = services.store.timeline(incident.id)
    made_before = inbox.replaying() and change_id is not None and timeline.has_seen(change_id)
    if severity == incident.severity and not made_before:
        return Reply(services.templates.render("lifecycle_reply.slack.j2", what="same_severity", severity=severity))
    previous = incident.severity
    if made_before:  # a replay after the change was made: announce what the first run changed
        latest = timeline.latest(EntryKind.SEVERITY_CHANGED)
        previous = str(latest.data.get("from", previous)) if latest else previous
    updated = services.store.set_severity(incident.id, severity, user_id, dedupe=change_id)
    text = services.templates.render("severity_changed.slack.j2", incident=updated, previous=previous, actor=user_id)
    _announce(services, updated, text)
    _refresh_header(services, updated)
    reminders.reschedule(services.settings, services.redis, incident.id, clock=services.clock, quiet=True)
    return Reply(services.templates.render("lifecycle_reply.slack.j2", what="severity", severity=severity))


def assign_role(services: Context, incident: Incident, role: str, assignee: str, user_id: str) -> Reply:
    updated = services.store.set_role(incident.id, role, assignee, user_id, dedupe=inbox.effect_id("change"))
    services.outbox.post(updated.channel_id, services.templates.render(
        "role_assigned.slack.j2", assignee=assignee, role=role, actor=user_id), incident_id=updated.id)
    _refresh_header(services, updated)
    return Reply(services.templates.render("lifecycle_reply.slack.j2", what="role", assignee=assignee, role=role))


def post_status_update(services: Context, incident: Incident, text: str, user_id: str) -> Reply:
    """A human status update: channel + stakeholder thread, recorded on the timeline."""
    elapsed = services.clock.now() - incident.opened_at
    rendered = services.templates.render("status_update.slack.j2", incident=incident, text=text, elapsed=elapsed,
                                         author=user_id, **reminders.update_context(services.settings, services.redis, incident))
    services.store.timeline(incident.id).append(EntryKind.STATUS_UPDATE, user_id, {"text": text}, at=services.clock.now(),
                                                dedupe=inbox.effect_id("timeline"))  # once, even when replayed
    _announce(services, incident, rendered)
    reminders.reschedule(services.settings, services.redis, incident.id, clock=services.clock, quiet=True)
    return Reply(services.templates.render("lifecycle_reply.slack.j2", what="update"))


def change_status(services: Context, incident: Incident, target: Status, user_id: str, note: str = "",
                  extra: dict[str, object] | None = None) -> Reply:
    """Mitigate, resolve or reopen, then announce (``extra`` goes into the timeline entry)."""
    data = {**({"note": note} if note else {}), **(extra or {})}
    updated = services.store.transition(incident.id, target, user_id, data or None, dedupe=inbox.effect_id("change"))
    elapsed = services.clock.now() - updated.opened_at
    text = services.templates.render("status_changed.slack.j2", incident=updated, actor=user_id, elapsed=elapsed, note=note)
    _announce(services, updated, text)
    _refresh_header(services, updated)
    if target == Status.RESOLVED:
        reminders.cancel_schedule(services.settings, services.redis, incident.id, quiet=True)
        alert_links.note_resolved_while_firing(services, updated, user_id)
        request_postmortem(services, updated, user_id)
        return Reply(services.templates.render("lifecycle_reply.slack.j2", what="resolved"))
    reminders.reschedule(services.settings, services.redis, incident.id, clock=services.clock, quiet=True)
    return Reply(services.templates.render("lifecycle_reply.slack.j2", what="status", status=target.value))


def _announce(services: Context, incident: Incident, text: str) -> None:
    """Post in the incident channel and in the incident's stakeholder thread, through the outbox: the
    stakeholder channel (Slack's ~1 post a second, shared by every incident) never holds up the incident's."""
    outbox = services.outbox
    outbox.post(incident.channel_id, text, text_section(text), incident_id=incident.id)
    stakeholders = services.settings.stakeholder_channel
    if stakeholders:
        outbox.post(stakeholders, text, text_section(text), incident_id=incident.id, in_stakeholder_thread=True)


def _refresh_header(services: Context, incident: Incident) -> None:
    """Keep the pinned header and the topic in step with the state."""
    if incident.header_ts:
        try:
            services.slack.update_message(incident.channel_id, incident.header_ts,
                                          header_fallback_text(incident, services.templates),
                                          incident_header(incident, services.templates))
        except SlackApiError as error:
            log.warning("incident %s: header update failed: %s", incident.id, error.code)
    try:
        services.slack.call("conversations.setTopic", channel=incident.channel_id,
                            topic=truncate(services.templates.render("incident_topic.slack.j2", incident=incident), 250))
    except SlackApiError as error:
        log.warning("incident %s: topic update failed: %s", incident.id, error.code)


def request_postmortem(services: Context, incident: Incident, user_id: str) -> None:
    """Queue the post-mortem draft (rendering a long timeline takes longer than Slack's 3 s)."""
    job_id, queued = inbox.job_once(services.redis)
    if not queued:
        jobs.enqueue(services.settings, jobs.POSTMORTEM, incident.id, user_id, redis=services.redis, job_id=job_id)


def request_resolve(services: Context, incident: Incident, user_id: str, override_reason: str | None) -> Reply:
    """Queue the recovery-checklist validation that resolves the incident if the cluster passes."""

    if incident.status == Status.RESOLVED:
        return Reply(services.templates.render("lifecycle_reply.slack.j2", what="already_resolved"))
    if override_reason and user_id != incident.commander:
        from incident.errors import NotPermitted

        raise NotPermitted(services.refusal("override_not_commander"),
                           hint=services.refusal("override_not_commander_hint", commander=incident.commander))
    from incident.clusters import load_registry

    clusters = load_registry(services.settings)
    cluster = clusters.get(incident.cluster or clusters.default)
    from service.cluster_jobs import require_reachable

    require_reachable(services, cluster)  # an agent cluster's validation runs in its agent
    budget = int(services.settings.assessment_budget_seconds)
    job_id, queued = inbox.job_once(services.redis)
    if not queued:
        jobs.enqueue(services.settings, jobs.RESOLVE, incident.id, user_id, override_reason, redis=services.redis,
                     timeout=budget + 120, job_id=job_id, on_cluster=cluster.name)
    services.store.timeline(incident.id).append(EntryKind.RESOLVE_REQUESTED, user_id, {"override_reason": override_reason},
                                                at=services.clock.now(), dedupe=inbox.effect_id("timeline"))
    return Reply(services.templates.render("lifecycle_reply.slack.j2", what="resolving"))


def change_impact(services: Context, incident: Incident, user_id: str, *, customer_facing: bool | None = None,
                  business_pressure: bool | None = None) -> Reply:
    """Record customer impact / business pressure, tell the channel, and re-plan escalations."""
    services.store.set_impact(incident.id, user_id, customer_facing=customer_facing,
                              business_pressure=business_pressure, dedupe=inbox.effect_id("change"))
    if customer_facing is not None:
        what = "customer-facing" if customer_facing else "internal only (not customer-facing)"
    else:
        what = "under business pressure" if business_pressure else "no longer under business pressure"
    services.outbox.post(incident.channel_id, services.templates.render(
        "impact_changed.slack.j2", actor=user_id, impact=what), incident_id=incident.id)
    reminders.reschedule(services.settings, services.redis, incident.id, clock=services.clock, quiet=True)
    return Reply(services.templates.render("lifecycle_reply.slack.j2", what="impact", impact=what))
