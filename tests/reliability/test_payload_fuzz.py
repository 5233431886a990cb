"""Hostile interactivity and command payloads, correctly signed: never a 500, never a side effect.

Hypothesis generates block_actions / view_submission payloads with wrong shapes, unknown action ids,
missing or foreign incident ids, and slash commands with arbitrary text; each is signed like Slack
and sent to the running production app.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.slack import SlackEmulator
from tests.fixtures.slack import RunningBot

ACTION_IDS = ["incident_assess", "incident_post_update", "incident_escalate", "incident_resolve", "action_confirm",
              "action_cancel", "escalation_escalate", "escalation_snooze", "unknown_action"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=3)),
                      max_leaves=8)
actions = st.fixed_dictionaries({"action_id": st.sampled_from(ACTION_IDS), "value": st.one_of(st.text(max_size=60), values),
                                 "block_id": st.text(max_size=20), "type": st.just("button")})
block_actions = st.fixed_dictionaries({
    "type": st.just("block_actions"),
    "user": st.one_of(st.fixed_dictionaries({"id": st.sampled_from(["U_ALICE", "U_EVE", ""])}), values),
    "actions": st.one_of(st.lists(actions, max_size=2), values),
    "channel": st.one_of(st.fixed_dictionaries({"id": st.sampled_from(["C_GENERAL", "C_NOPE"])}), values),
    "team": st.just({"id": "T_EMU"}),
    "trigger_id": st.text(max_size=20),
    "response_url": st.just("http://127.0.0.1:9/hooks/nowhere"),
})
view_submissions = st.fixed_dictionaries({
    "type": st.just("view_submission"),
    "user": st.just({"id": "U_ALICE"}),
    "team": st.just({"id": "T_EMU"}),
    "view": st.fixed_dictionaries({"callback_id": st.sampled_from(["status_update_modal", "other"]),
                                   "private_metadata": st.text(max_size=30), "state": values}),
})
payloads = st.one_of(block_actions, view_submissions, values)


def _state(bot: RunningBot) -> tuple[int, int]:
    keys = bot.services.redis.keys(f"{bot.services.keys.prefix}:incident*")
    return len(keys), len(bot.services.redis.keys(f"{bot.services.keys.prefix}:timeline:*"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads)
def test_interactivity_payloads_never_500_nor_change_state(slack: SlackEmulator, bot_server: RunningBot,
                                                           payload: object) -> None:
    before = _state(bot_server)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    response = slack.client.send("interactivity", body, "application/x-www-form-urlencoded")
    assert 0 < response.status < 500, (response.status, response.body, response.error)
    assert _state(bot_server) == before
    assert not [c for c in slack.calls if c.method in ("conversations.create", "chat.postMessage")]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=3500), user=st.sampled_from(["U_ALICE", "U_DAVE"]))
def test_slash_command_text_never_500(slack: SlackEmulator, bot_server: RunningBot, text: str, user: str) -> None:
    response = slack.slash_command(user, "C_GENERAL", text.replace("incident open", "incident"))
    assert 0 < response.status < 500, (response.status, response.body, response.error)
    assert response.elapsed_seconds < 3
