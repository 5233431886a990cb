"""Hostile interactivity payloads over Socket Mode: every envelope acknowledged, no side effect, the link lives.

The same Hypothesis strategies as the HTTP fuzz (``test_payload_fuzz``), sent as ``interactive``
envelopes on the bot's connection, plus payloads that are not objects at all. Over HTTP the answer to
garbage is a 4xx; over the socket it is an acknowledgement with nothing done, on the same connection.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.slack import SlackEmulator
from tests.fixtures.slack import RunningBot
from tests.reliability.test_payload_fuzz import _state, payloads


@pytest.mark.parametrize("bot_server", ["socket"], indirect=True)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(payloads, st.lists(st.integers(), max_size=3), st.text(max_size=20)),
       kind=st.sampled_from(["block_actions", "view_submission"]))
def test_interactive_envelopes_are_acknowledged_and_change_nothing(slack: SlackEmulator, bot_server: RunningBot,
                                                                   payload: object, kind: str) -> None:
    (connection,) = slack.socket_connections
    before = _state(bot_server)
    response = slack.socket.deliver(kind, payload, connection=connection)  # type: ignore[arg-type]
    assert response.status == 200, (payload, response)
    assert _state(bot_server) == before
    assert [c.id for c in slack.socket_connections] == [connection.id]
    assert not [c for c in slack.calls if c.method in ("conversations.create", "chat.postMessage")]
