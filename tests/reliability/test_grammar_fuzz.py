"""Property-based fuzzing of the /k8s grammar: any text either parses or raises CommandError with a usage hint."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import build_registry
from incident.errors import CommandError

registry = build_registry()
words = st.sampled_from(["incident", "open", "status", "sev1", "sev2", "sev9", "severity", "role", "commander",
                         "comms", "update", "resolve", "mitigate", "assess", "postmortem", "help", "<@U1>",
                         "<!channel>", "node", "cordon", "drain", "--grace", "-1", "ns/name", "🔥", "\u0000", "x" * 500])
texts = st.one_of(st.text(max_size=4000), st.lists(words, max_size=8).map(" ".join))


@settings(max_examples=800, deadline=None)
@given(texts)
def test_any_text_parses_or_fails_with_usage(text: str) -> None:
    try:
        parsed = registry.parse(text)
    except CommandError as error:
        assert error.message
        assert error.hint and ("/k8s" in error.hint)
        return
    assert parsed.spec in registry.specs
    for value in parsed.args.values():
        if isinstance(value, str):
            assert len(value) <= 3000


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=150).filter(lambda t: t.strip() and t.split()[0].lower() not in ("sev1", "sev2", "sev3")))
def test_titles_round_trip(title: str) -> None:
    try:
        parsed = registry.parse(f"incident open sev1 {title}")
    except CommandError:
        return  # e.g. the title is only whitespace Slack would not send
    assert parsed.args["title"] == title.strip()


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=0, max_value=25))
def test_channel_names_are_always_valid_for_slack(title: str, suffix: int) -> None:
    import re
    from datetime import UTC, datetime

    from chat.channel_names import incident_channel_name

    name = incident_channel_name("inc", datetime(2026, 11, 23, tzinfo=UTC), title, suffix=suffix or None)
    assert re.fullmatch(r"[a-z0-9_-]{1,80}", name), name
    assert name.startswith("inc-20261123-")
    if suffix > 1:
        assert name.endswith(f"-{suffix}")
