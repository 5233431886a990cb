"""While the bot has a Deployment's probes off (emergency isolation), every status prompt says so, with since when;
``probes restore`` ends the reminder (pure: the cadence digest and the templates)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incident.cadence import digest
from incident.model import Incident
from incident.templates import TemplateRenderer
from incident.timeline import TimelineEntry

T0 = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


def _action(minute: int, kind: str, status: str = "succeeded") -> TimelineEntry:
    moment = T0 + timedelta(minutes=minute)
    return TimelineEntry(f"{minute}-0", "action", "U_ALICE", moment, {
        "kind": kind, "target": "shop/web", "description": f"{kind.replace('-', ' ')} deployment shop/web",
        "status": status, "finished_at": moment.timestamp()})


def _incident() -> Incident:
    return Incident(id="20261202-001", title="cascade", severity="sev1", channel_id="C1", channel_name="inc-x",
                    opened_by="U_ALICE", opened_at=T0, commander="U_ALICE")


def _prompt(probes_off: dict[str, datetime]) -> str:
    return TemplateRenderer().render(
        "status_prompt.slack.j2", incident=_incident(), elapsed=timedelta(minutes=20), since_update=timedelta(minutes=20),
        last_update_at=None, cadence=timedelta(minutes=15), verdict=None, assessed_at=None, probes_off=probes_off)


def test_probes_off_is_reminded_in_every_prompt_until_restored() -> None:
    facts = digest(_incident(), [_action(2, "probes-off")])
    assert dict(facts.probes_off) == {"shop/web": T0 + timedelta(minutes=2)}
    text = _prompt(dict(facts.probes_off))
    assert "Probes are off on deployment `shop/web` since 14:02 UTC" in text
    assert "`/k8s probes restore deployment shop/web`" in text

    restored = digest(_incident(), [_action(2, "probes-off"), _action(9, "probes-restore")])
    assert dict(restored.probes_off) == {}
    assert "Probes are off" not in _prompt({})


def test_a_failed_probes_off_is_not_in_force() -> None:
    assert dict(digest(_incident(), [_action(2, "probes-off", status="failed")]).probes_off) == {}
