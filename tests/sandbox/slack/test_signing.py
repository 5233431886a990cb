"""Every request toward the bot is signed the way Slack signs it (checked with slack_sdk's verifier)."""

from __future__ import annotations

import time

from slack_sdk.signature import SignatureVerifier

from sandbox.slack import SlackEmulator
from sandbox.slack.signing import signature, verify
from tests.sandbox.slack.conftest import SECRET, StubBot


def _verifier_accepts(request_body: bytes, headers: dict[str, str]) -> bool:
    return SignatureVerifier(SECRET).is_valid_request(request_body, headers)


def test_known_vector() -> None:
    # Slack's documented example (docs: verifying requests from Slack).
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    assert signature("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")


def test_slash_command_signature_verifies(emu: SlackEmulator, bot: StubBot) -> None:
    emu.slash_command("U_ALICE", "C_STAKE", "status")
    request = bot.wait_for(1)[0]
    assert _verifier_accepts(request.body, request.headers)
    assert verify(SECRET, request.body, request.headers)
    form = request.form()
    assert (form["command"], form["text"], form["user_id"], form["channel_id"]) == ("/k8s", "status", "U_ALICE",
                                                                                     "C_STAKE")
    assert form["response_url"].startswith(emu.base_url + "hooks/commands/T_EMU/")
    assert form["trigger_id"].count(".") == 2


def test_event_and_interaction_signatures_verify(emu: SlackEmulator, bot: StubBot) -> None:
    emu.post_message_as_user("U_ALICE", "C_STAKE", "hello")
    emu.url_verification()
    for request in bot.wait_for(2):
        assert _verifier_accepts(request.body, request.headers)


def test_forged_and_stale_requests(emu: SlackEmulator, bot: StubBot) -> None:
    emu.slash_command("U_ALICE", "C_STAKE", "status", bad_signature=True)
    stale = int(time.time()) - 6 * 60
    emu.slash_command("U_ALICE", "C_STAKE", "status", timestamp=stale)
    forged, replayed = bot.wait_for(2)
    assert not _verifier_accepts(forged.body, forged.headers)
    assert replayed.headers["X-Slack-Request-Timestamp"] == str(stale)
    assert not _verifier_accepts(replayed.body, replayed.headers)
    assert SignatureVerifier(SECRET, clock=_FixedClock(stale)).is_valid_request(replayed.body, replayed.headers)


class _FixedClock:
    def __init__(self, now: int) -> None:
        self._now = now

    def now(self) -> float:
        return float(self._now)
