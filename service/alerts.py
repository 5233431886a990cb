"""Alerts become incidents: what the bot does with each Alertmanager notification, and with the triage buttons.

The intake (``bot.alert_intake``) validates a notification and calls :func:`accept`, which queues one
job per notification (:data:`service.jobs.ALERT_NOTIFICATION`) whose id is the notification's
idempotency key: a retried delivery of the same content finds the job and is only acknowledged.
The job (:func:`process_notification`) handles the notification under its group's lock:

- **a group seen for the first time** gets the rules' decision (:mod:`incident.alert_rules`): ``open``
  opens an incident for it (:func:`service.lifecycle.open_incident_from_alerts`, severity and title
  from the rules, the cluster label's value passed along), ``triage`` posts a message with *Open
  incident* / *Attach to an open incident…* / *Dismiss* in ``ALERT_TRIAGE_CHANNEL``, ``record`` only
  keeps it. A group whose first notification has nothing firing is recorded.
- **a group linked to an incident** (its own, or attached by a person): alerts that newly fire or
  resolve (:func:`incident.alert_group.alert_changes`: never the same fingerprint twice) become
  ``alert_fired`` / ``alert_resolved`` entries, written with the alerts in one transaction, and one
  message per notification in the incident channel. When every linked alert has resolved, the channel
  is asked once whether to run the recovery checklist; its button starts the normal ``/k8s resolve``
  (still gated by the validation assessment: alerts clearing is evidence, not proof).
- **a group in triage, dismissed or recorded**: its alerts are kept up to date, nobody is told; when
  a person attaches it or opens an incident from it, its alerts so far join that incident's timeline. A
  group in triage whose alerts all resolve before anyone decided says so in the triage channel and is
  only recorded from then on.
- **a new episode**: a decision holds until the group's alerts have all resolved. When something fires
  after that — ``KubeAPIDown`` on ``prod`` next month has the same ``groupKey`` — a dismissed group, or
  one whose incident is resolved, is decided by the rules again (a new incident, or triage); a recorded
  group is decided again whenever something new fires. See :func:`_starts_anew`.

Every post goes through the durable outbox (:mod:`service.outbox`), so an alert storm — hundreds of
alerts in dozens of groups — queues one triage message or one incident's posts per group, sent per
channel at Slack's pace. An incident resolved by hand while linked alerts still fire says so in its
channel and on its timeline (:func:`note_resolved_while_firing`, called by the resolve path), and the
post-mortem shows it. ``/k8s incident status`` lists the linked alerts (:func:`linked_alerts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from chat.alert_blocks import attach_modal, decided_message, recovery_prompt, triage_message
from incident.alert_group import ALERTMANAGER, AlertChanges, AlertGroup, GroupState, alert_changes, still_firing
from incident.alert_payload import Notification, parse_notification
from incident.alert_rules import AlertRules
from incident.errors import IncidentBotError, IncidentNotFound, SlackApiError
from incident.model import Incident
from persistence.alert_store import AlertStore
from service import jobs, lifecycle
from service.alert_links import alert_lines as _lines
from service.alert_links import alert_store as _store
from service.context import Context
from service.lifecycle import Reply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """What the intake answers Alertmanager: ``queued`` or ``duplicate`` (a retry of a queued notification)."""

    status: str
    job_id: str
    group_id: str


@dataclass(frozen=True)
class MessageRef:
    """The triage message a button was clicked on (to replace it by the decision)."""

    channel_id: str
    ts: str


# --- intake -------------------------------------------------------------------------------------------


def accept(services: Context, notification: Notification) -> Accepted:
    """Queue the notification's processing once; a retried delivery (same content) is only acknowledged."""
    job_id = f"alert-{notification.idempotency_key()}"
    if jobs.job_exists(services.settings, job_id, services.redis):
        return Accepted("duplicate", job_id, notification.group_id)
    jobs.enqueue(services.settings, jobs.ALERT_NOTIFICATION, notification.model_dump(mode="json", by_alias=True),
                 redis=services.redis, job_id=job_id, description=f"alert group {notification.group_id}")
    return Accepted("queued", job_id, notification.group_id)


# --- the job ------------------------------------------------------------------------------------------


def process_notification(services: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """Handle one notification (see the module docstring); returns what happened, for RQ's result."""
    notification = parse_notification(payload)
    rules = services.settings.intake_rules()
    store = _store(services)
    with store.lock(notification.group_id):
        group = store.group(notification.group_id)
        stored = store.alerts(notification.group_id)
        changes = alert_changes(stored, notification.alerts)
        if group is None:
            group = AlertGroup(id=notification.group_id, group_key=notification.group_key, state=GroupState.RECORDED,
                               first_seen_at=services.clock.now(), severity="", title="",
                               receiver=notification.receiver, group_labels=dict(notification.group_labels))
            _decide(services, store, group, notification, rules, changes)
        elif changes.fired and _starts_anew(services, group, quiet_before=not still_firing(list(stored.values()))):
            _new_episode(services, store, group, notification, rules, changes)
        else:
            _seen_again(services, store, group, changes)
    return {"group": group.id, "state": group.state.value, "incident": group.incident_id, "episode": group.episode,
            "fired": len(changes.fired), "resolved": len(changes.resolved)}


def _decide(services: Context, store: AlertStore, group: AlertGroup, notification: Notification, rules: AlertRules,
            changes: AlertChanges) -> None:
    """The rules' decision for the group's current episode, and what follows from it."""
    decision = rules.decide(notification)
    group.severity, group.title, group.cluster = decision.severity, decision.title, decision.cluster
    action = decision.action
    triage_channel = services.settings.alert_triage_channel
    if action == "triage" and not triage_channel:
        log.warning("alert group %s goes to triage, but ALERT_TRIAGE_CHANNEL is not set: only recorded", group.id)
        action = "record"
    store.store_changes(group.id, changes)
    if action == "open":
        incident = _open(services, group, opened_by=ALERTMANAGER, commander=None)
        _link(services, store, group, incident, actor=ALERTMANAGER, how="opened")
    elif action == "triage":
        group.state, group.triage_channel = GroupState.TRIAGE, triage_channel
        store.save(group)
        _post_triage(services, store, group)
    else:
        store.save(group)


def _starts_anew(services: Context, group: AlertGroup, *, quiet_before: bool) -> bool:
    """Whether alerts that newly fire start a new episode of the group, decided by the rules again.

    A ``groupKey`` is stable for as long as the route and the group's labels are (``KubeAPIDown`` on
    ``prod`` today and next month), so a decision holds for one episode only: a recorded group is decided
    again whenever something new fires (a critical alert may have joined it); a dismissed group, or one
    whose incident is resolved, once everything had resolved before. A group waiting in triage waits on;
    one whose incident is still active (or was resolved while its alerts still fired) keeps joining it.
    """
    if group.state == GroupState.RECORDED:
        return True
    if not quiet_before:
        return False
    if group.state == GroupState.DISMISSED:
        return True
    if group.state == GroupState.INCIDENT and group.incident_id:
        return not services.store.get(group.incident_id).is_active
    return False


def _new_episode(services: Context, store: AlertStore, group: AlertGroup, notification: Notification,
                 rules: AlertRules, changes: AlertChanges) -> None:
    """Forget the last episode's decision (its incident keeps its timeline) and decide again."""
    if group.incident_id:
        store.unlink(group.incident_id, group.id)
    store.forget_resolved(group.id)
    group.episode += 1
    group.state, group.incident_id, group.triage_channel = GroupState.RECORDED, None, None
    group.triage_post_id = group.decided_by = None
    _decide(services, store, group, notification, rules, changes)


def _seen_again(services: Context, store: AlertStore, group: AlertGroup, changes: AlertChanges) -> None:
    if group.state == GroupState.TRIAGE and not group.triage_post_id:
        _post_triage(services, store, group)  # a first attempt saved the group, then died before posting
    if group.state != GroupState.INCIDENT or not group.incident_id:
        store.store_changes(group.id, changes)
        quiet = not still_firing(list(store.alerts(group.id).values()))
        if group.state == GroupState.TRIAGE and changes.resolved and quiet:
            _resolved_in_triage(services, store, group, len(changes.resolved))
        return
    incident = services.store.get(group.incident_id)
    store.store_changes(group.id, changes, incident_id=incident.id, at=services.clock.now())
    if changes.empty:
        return
    if changes.fired:
        store.clear_resolved_prompt(incident.id)
    text = services.templates.render("alert_changes.slack.j2", incident=incident, group=group, how=None,
                                     fired=_lines(changes.fired), resolved=_lines(changes.resolved),
                                     fired_count=len(changes.fired), resolved_count=len(changes.resolved))
    services.outbox.post(incident.channel_id, text, decided_message(text), incident_id=incident.id)
    if changes.resolved:
        _prompt_if_all_resolved(services, store, incident)


def _resolved_in_triage(services: Context, store: AlertStore, group: AlertGroup, count: int) -> None:
    """Everything resolved before anyone decided: said under the triage message's channel, and the group is
    only recorded from now on, so the next firing is a new episode with a triage message of its own."""
    assert group.triage_channel
    text = services.templates.render("alert_triage_resolved.slack.j2", group=group, count=count)
    group.state = GroupState.RECORDED
    store.save(group)
    services.outbox.post(group.triage_channel, text, decided_message(text))


def _open(services: Context, group: AlertGroup, *, opened_by: str, commander: str | None) -> Incident:
    """The incident of ``group``, opened once however often the job runs."""
    return lifecycle.open_incident_from_alerts(
        services, dedupe_key=f"alert-group:{group.id}:{group.episode}", severity=group.severity, title=group.title,
        cluster=group.cluster, opened_by=opened_by, commander=commander)


def _link(services: Context, store: AlertStore, group: AlertGroup, incident: Incident, *, actor: str,
          how: str) -> None:
    """Link ``group`` to ``incident`` (entries for its alerts so far) and say so in the incident channel."""
    group.state, group.incident_id = GroupState.INCIDENT, incident.id
    if actor != ALERTMANAGER:
        group.decided_by = actor
    records = store.link(group, actor=actor, how=how, at=services.clock.now())
    firing = still_firing(records)
    if firing:
        store.clear_resolved_prompt(incident.id)
    text = services.templates.render("alert_changes.slack.j2", incident=incident, group=group, how=how, actor=actor,
                                     fired=_lines(firing), resolved=[], fired_count=len(firing), resolved_count=0)
    services.outbox.post(incident.channel_id, text, decided_message(text), incident_id=incident.id)


def _post_triage(services: Context, store: AlertStore, group: AlertGroup) -> None:
    assert group.triage_channel
    firing = still_firing(list(store.alerts(group.id).values()))
    text = services.templates.render("alert_triage.slack.j2", group=group, alerts=_lines(firing), count=len(firing))
    group.triage_post_id = services.outbox.post(group.triage_channel, text,
                                                triage_message(group.id, text, services.templates))
    store.save(group)


def _prompt_if_all_resolved(services: Context, store: AlertStore, incident: Incident) -> None:
    incident = services.store.get(incident.id)
    if not incident.is_active:
        return
    records = [r for g in store.groups_of(incident.id) for r in store.alerts(g.id).values()]
    if not records or still_firing(records) or not store.claim_resolved_prompt(incident.id):
        return
    text = services.templates.render("alerts_all_resolved.slack.j2", incident=incident, count=len(records))
    services.outbox.post(incident.channel_id, text, recovery_prompt(incident.id, text, services.templates),
                         incident_id=incident.id)


# --- the triage buttons and the recovery prompt ----------------------------------------------------------


def _triage_group(services: Context, store: AlertStore, group_id: str) -> AlertGroup:
    group = store.group(group_id)
    if group is None:
        raise IncidentBotError(_reply_text(services, "unknown_group"))
    return group


def _reply_text(services: Context, what: str, **values: Any) -> str:
    """What the person who clicked is told (``alert_reply.slack.j2``), for a reply or a refusal."""
    return services.templates.render("alert_reply.slack.j2", what=what, **values)


def _already_decided(services: Context, group: AlertGroup) -> Reply:
    return Reply(_reply_text(services, "decided", group=group))


def _decide_in_triage(services: Context, group_id: str, where: MessageRef | None, *, how: str,
                      decision: Callable[[AlertStore, AlertGroup], Incident | None]) -> Reply:
    """A triage button's decision, once: under the group's lock, refused when the group was already decided.

    ``decision`` does what is the button's own (open, attach, dismiss) and returns the incident the group
    now belongs to, if any; then the triage message becomes the decision, and the person is told ``how``.
    """
    store = _store(services)
    with store.lock(group_id):
        group = _triage_group(services, store, group_id)
        if group.state != GroupState.TRIAGE:
            return _already_decided(services, group)
        incident = decision(store, group)
    _replace_triage_message(services, group, where, incident=incident, how=how)
    return Reply(_reply_text(services, how, group=group, incident=incident))


def _replace_triage_message(services: Context, group: AlertGroup, where: MessageRef | None, *,
                            incident: Incident | None, how: str) -> None:
    """The triage message becomes the decision (no buttons); a failure is logged, the decision stands."""
    if where is None:
        return
    firing = still_firing(list(_store(services).alerts(group.id).values()))
    text = services.templates.render("alert_triage_decided.slack.j2", group=group, incident=incident, how=how,
                                     alerts=_lines(firing), count=len(firing))
    try:
        services.slack.update_message(where.channel_id, where.ts, text, decided_message(text))
    except SlackApiError as error:
        log.warning("alert group %s: could not update the triage message: %s", group.id, error.code)


def open_from_triage(services: Context, group_id: str, user_id: str, where: MessageRef | None) -> Reply:
    """*Open incident*: the person who clicked opens (and commands) the group's incident."""
    def opened(store: AlertStore, group: AlertGroup) -> Incident:
        incident = _open(services, group, opened_by=user_id, commander=user_id)
        _link(services, store, group, incident, actor=user_id, how="opened")
        return incident
    return _decide_in_triage(services, group_id, where, how="opened", decision=opened)


def attach_choices(services: Context, group_id: str, trigger_id: str, where: MessageRef) -> Reply:
    """*Attach to an open incident…*: a modal to choose one of the open incidents."""
    group = _triage_group(services, _store(services), group_id)
    if group.state != GroupState.TRIAGE:
        return _already_decided(services, group)
    incidents = sorted(services.store.active(), key=lambda i: i.opened_at, reverse=True)
    if not incidents:
        return Reply(_reply_text(services, "none_open", group=group))
    view = attach_modal(group_id, where.channel_id, where.ts, incidents, services.templates)
    services.slack.call("views.open", trigger_id=trigger_id, view=view.to_dict())
    return Reply("")


def attach(services: Context, group_id: str, incident_id: str, user_id: str, where: MessageRef | None) -> Reply:
    """Link the group to an open incident: its alerts so far join that incident's timeline, and later ones too."""
    try:
        incident = services.store.get(incident_id)
    except IncidentNotFound:
        raise IncidentBotError(_reply_text(services, "no_such_incident")) from None
    if not incident.is_active:
        raise IncidentBotError(_reply_text(services, "incident_resolved", incident=incident))

    def attached(store: AlertStore, group: AlertGroup) -> Incident:
        _link(services, store, group, incident, actor=user_id, how="attached")
        return incident
    return _decide_in_triage(services, group_id, where, how="attached", decision=attached)


def dismiss(services: Context, group_id: str, user_id: str, where: MessageRef | None) -> Reply:
    """*Dismiss*: the group is kept (recorded), nobody is asked again about it."""
    def dismissed(store: AlertStore, group: AlertGroup) -> None:
        group.state, group.decided_by = GroupState.DISMISSED, user_id
        store.save(group)
    return _decide_in_triage(services, group_id, where, how="dismissed", decision=dismissed)


def run_recovery_checklist(services: Context, incident_id: str, user_id: str) -> Reply:
    """The recovery prompt's button: the normal ``/k8s resolve`` (validation assessment first)."""
    return lifecycle.request_resolve(services, services.store.get(incident_id), user_id, None)
