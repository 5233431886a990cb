"""Every Redis key the bot uses, built in one place.

Keys are grouped under one prefix (``Settings.queue_prefix``) so several bots can share a
Redis, and nothing else in the code assembles a key by hand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key builder for one bot installation."""

    prefix: str = "k8sbot"

    def incident(self, incident_id: str) -> str:
        """Hash holding one incident's state."""
        return f"{self.prefix}:incident:{incident_id}"

    def incident_ids(self) -> str:
        """Sorted set of every incident id, scored by opening time."""
        return f"{self.prefix}:incidents"

    def incident_sequence(self, day: str) -> str:
        """Counter of the incidents opened on one day (``YYYYMMDD``), for readable ids."""
        return f"{self.prefix}:incident-seq:{day}"

    def bot_user_id(self) -> str:
        """The bot's own Slack user id, cached from ``auth.test`` (it is not invited to its own channels)."""
        return f"{self.prefix}:bot-user-id"

    def incident_by_channel(self) -> str:
        """Hash channel id → incident id."""
        return f"{self.prefix}:incident-by-channel"

    def open_request(self, dedupe_key: str) -> str:
        """Idempotency record of one ``incident open`` request (Slack retries, double clicks)."""
        return f"{self.prefix}:open-request:{dedupe_key}"

    def timeline(self, incident_id: str) -> str:
        """Append-only Redis stream of an incident's timeline."""
        return f"{self.prefix}:timeline:{incident_id}"

    def timeline_seen(self, incident_id: str) -> str:
        """Set of Slack identities (event ids, message ts+kind) already in the timeline."""
        return f"{self.prefix}:timeline-seen:{incident_id}"

    def seen_event(self, event_id: str) -> str:
        """Marker that an Events API delivery was processed (retries are dropped)."""
        return f"{self.prefix}:seen-event:{event_id}"

    def backfill_cursor(self, channel_id: str) -> str:
        """Newest message ts the channel log has captured for a channel."""
        return f"{self.prefix}:backfill:{channel_id}"

    def action_lock(self, cluster: str) -> str:
        """The per-cluster lock that serializes risky actions."""
        return f"{self.prefix}:action-lock:{cluster}"

    def action_fence(self, cluster: str) -> str:
        """Monotonic fencing-token counter of the per-cluster action lock."""
        return f"{self.prefix}:action-fence:{cluster}"

    def action_queue(self, cluster: str) -> str:
        """FIFO list of waiting action ids for a cluster."""
        return f"{self.prefix}:action-queue:{cluster}"

    def action(self, action_id: str) -> str:
        """Hash holding one action request."""
        return f"{self.prefix}:action:{action_id}"

    def action_effect(self, effect: str) -> str:
        """Which request an acknowledged command or click (its inbox effect id) created: a replay finds it."""
        return f"{self.prefix}:action-effect:{effect}"

    def action_seq(self) -> str:
        """Counter behind action ids (``A1``, ``A2``, …)."""
        return f"{self.prefix}:action-seq"

    def action_allowed_members(self) -> str:
        """Short-lived cache of the members of the allowed user groups (a set of user ids)."""
        return f"{self.prefix}:action-allowed-members"

    def action_tickets(self, cluster: str) -> str:
        """Counter numbering a cluster's confirmed actions in queue order (the request order)."""
        return f"{self.prefix}:action-tickets:{cluster}"

    def action_drain_pending(self, cluster: str) -> str:
        """Marker that a drain job of a cluster is queued and not yet started (confirms then add none)."""
        return f"{self.prefix}:action-drain-pending:{cluster}"

    def action_watchdog(self, cluster: str) -> str:
        """Marker that a delayed drain of a cluster's action queue is scheduled (one chain at a time)."""
        return f"{self.prefix}:action-watchdog:{cluster}"

    def action_positions_pending(self, cluster: str) -> str:
        """Marker that a refresh of the waiting actions' positions is queued."""
        return f"{self.prefix}:action-positions:{cluster}"

    def schedule(self, incident_id: str) -> str:
        """Hash of an incident's scheduled reminders and their job ids."""
        return f"{self.prefix}:schedule:{incident_id}"

    def schedule_lock(self, incident_id: str) -> str:
        """Lock serializing an incident's status ticks and schedule changes (one evaluation at a time)."""
        return f"{self.prefix}:schedule-lock:{incident_id}"

    def sent_once(self, token: str) -> str:
        """Marker that a scheduled ping was sent (two schedulers never send twice)."""
        return f"{self.prefix}:sent:{token}"

    def postmortem_upload(self, incident_id: str, request_id: str) -> str:
        """Hash recording one post-mortem request's upload (``file_id``, ``done``), so a retry never re-uploads."""
        return f"{self.prefix}:postmortem-upload:{incident_id}:{request_id}"

    def outbox(self, channel: str) -> str:
        """List of the Slack writes waiting for one channel, oldest first (the durable outbox)."""
        return f"{self.prefix}:outbox:{channel}"

    def outbox_ready(self) -> str:
        """Sorted set channel → when (epoch ms) its next write may be sent (later after a 429's Retry-After)."""
        return f"{self.prefix}:outbox-ready"

    def outbox_lease(self, channel: str) -> str:
        """Lease of the one drainer sending a channel's writes (keeps them in order across replicas)."""
        return f"{self.prefix}:outbox-lease:{channel}"

    def outbox_attempts(self) -> str:
        """Hash channel → delivery attempts of its current head (above 1: look before re-posting)."""
        return f"{self.prefix}:outbox-attempts"

    def outbox_late_notice(self, incident_id: str) -> str:
        """Marker that the commander was told stakeholders are updated late (once per window)."""
        return f"{self.prefix}:outbox-late:{incident_id}"

    def channel_clusters(self) -> str:
        """Hash channel id → the cluster the channel is bound to (``/k8s bind cluster``)."""
        return f"{self.prefix}:channel-cluster"

    def agent_sweep_lock(self) -> str:
        """Lock of the central sweep of the agents' abandoned assessments (one central worker at a time)."""
        return f"{self.prefix}:agent-sweep-lock"

    def agent_heartbeat(self, cluster: str) -> str:
        """Hash of a cluster's agent: when it was last seen, its host and pid (expires with the window)."""
        return f"{self.prefix}:agent-heartbeat:{cluster}"

    def cluster_reach(self, cluster: str) -> str:
        """Hash of a central cluster's last apiserver probe by the central workers: reachable or why not, when
        (expires a few probe intervals after the last one: no record means no central worker probed it lately)."""
        return f"{self.prefix}:cluster-reach:{cluster}"

    def cluster_verdict(self, cluster: str) -> str:
        """Hash with the latest assessment verdict of a cluster (scope, headline, when), for ``/k8s clusters``."""
        return f"{self.prefix}:cluster-verdict:{cluster}"

    def action_allowed_members_of(self, cluster: str) -> str:
        """The cache of :meth:`action_allowed_members` for one cluster of a registry (its own user groups)."""
        return f"{self.prefix}:action-allowed-members:{cluster}"

    def outbox_sent_ts(self, post_id: str) -> str:
        """The ``ts`` Slack gave a post queued with a placeholder (an agent's confirmation message), for its updates."""
        return f"{self.prefix}:outbox-sent-ts:{post_id}"

    def fleet_run(self, run_id: str) -> str:
        """Hash gathering one ``/k8s assess --cluster all`` run: its meta and one row per cluster."""
        return f"{self.prefix}:fleet-run:{run_id}"

    def cluster_queue_name(self, kind: str, cluster: str) -> str:
        """RQ queue name for a kind of cluster-bound job (``assess``, ``actions``) of one registered cluster."""
        return f"{self.prefix}-{kind}@{cluster}"

    def outbox_pushed(self, post_id: str) -> str:
        """Marker that a post with this (deterministic) id was queued: a replayed command queues it once."""
        return f"{self.prefix}:outbox-pushed:{post_id}"

    def outbox_digest(self, channel: str) -> str:
        """Marker that a channel that fell behind got its digest (one per window, :mod:`service.fan_in`)."""
        return f"{self.prefix}:outbox-digest:{channel}"

    def open_channel_name(self, token: str) -> str:
        """The channel name a replayable ``incident open`` is creating (a replay adopts that channel)."""
        return f"{self.prefix}:open-channel:{token}"

    def inbox_entries(self) -> str:
        """Hash entry id → the acknowledged command/click/submission (JSON), until its work is done."""
        return f"{self.prefix}:inbox"

    def inbox_due(self) -> str:
        """Sorted set entry id → when (epoch ms) its lease ends; a lease that ends unrenewed is replayed."""
        return f"{self.prefix}:inbox-due"

    def inbox_owners(self) -> str:
        """Hash entry id → the process (owner token) running it now; only the owner may finish it."""
        return f"{self.prefix}:inbox-owners"

    def inbox_attempts(self) -> str:
        """Hash entry id → how many times its work was started (1: the first; more: replays)."""
        return f"{self.prefix}:inbox-attempts"

    # -- guided recovery (service.recovery) ---------------------------------------------------------

    def recovery_done(self, incident_id: str) -> str:
        """Hash: description of an action that succeeded in an incident → when (plan steps shown as done)."""
        return f"{self.prefix}:recovery-done:{incident_id}"

    def recovery_step(self, action_id: str) -> str:
        """Hash: the plan step an action was requested from (assessment ref, step number, incident)."""
        return f"{self.prefix}:recovery-step:{action_id}"

    def recovery_undo(self, action_id: str) -> str:
        """Hash: the inverse of a finished action (kind, target, params) or why it has none."""
        return f"{self.prefix}:recovery-undo:{action_id}"

    def node_restore(self, incident_id: str, node: str) -> str:
        """Hash: a node the bot deleted in an incident — its labels and taints, when, and whether it came back."""
        return f"{self.prefix}:node-restore:{incident_id}:{node}"

    def queue_name(self, kind: str) -> str:
        """RQ queue name for a kind of job (``assess``, ``actions``, ``schedule``, ``postmortem``)."""
        return f"{self.prefix}-{kind}"

    # --- Alertmanager intake (persistence.alert_store) ----------------------------------
    def alert_group(self, group_id: str) -> str:
        """Hash of one Alertmanager alert group: state, incident, cluster, severity, title (``AlertGroup``)."""
        return f"{self.prefix}:alert-group:{group_id}"

    def alert_group_alerts(self, group_id: str) -> str:
        """Hash fingerprint → JSON record (status, labels, annotations, startsAt…) of a group's alerts."""
        return f"{self.prefix}:alert-group-alerts:{group_id}"

    def alert_group_lock(self, group_id: str) -> str:
        """Lock serializing the processing of one group's notifications (two workers, one group)."""
        return f"{self.prefix}:alert-group-lock:{group_id}"

    def alert_groups(self) -> str:
        """Sorted set of every alert group id, scored by when it was first seen."""
        return f"{self.prefix}:alert-groups"

    def incident_alert_groups(self, incident_id: str) -> str:
        """Set of the alert group ids linked to an incident (its own and those attached to it)."""
        return f"{self.prefix}:incident-alert-groups:{incident_id}"

    def alerts_all_resolved_prompt(self, incident_id: str) -> str:
        """Marker that the "all linked alerts resolved" prompt was posted (cleared when one fires again)."""
        return f"{self.prefix}:alerts-resolved-prompt:{incident_id}"
