"""mrkdwn escaping and truncation: user text is inert, and a cut never breaks an entity or a control sequence."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chat.escape import escape_mrkdwn, truncate


def test_escaping_makes_mentions_and_links_inert() -> None:
    assert escape_mrkdwn("<!channel> & <@U1> <https://x|y>") == "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;https://x|y&gt;"


def test_a_cut_moves_back_before_an_entity() -> None:
    text = escape_mrkdwn("ab & cd")  # "ab &amp; cd"
    for limit in range(4, 9):
        cut = truncate(text, limit)
        assert "&" not in cut or "&amp;" in cut, cut
        assert len(cut) <= limit


def test_a_cut_moves_back_before_a_control_sequence() -> None:
    assert truncate("see <https://example.com/a/long/path|the runbook> now", 20) == "see …"
    assert truncate("ping <@U12345> please", 10) == "ping …"
    assert truncate("short", 10) == "short"


@given(st.text(alphabet="ab<>&|@!# ", max_size=60), st.integers(min_value=1, max_value=70))
def test_escaped_text_stays_whole_after_any_cut(raw: str, limit: int) -> None:
    cut = truncate(escape_mrkdwn(raw), limit)
    assert len(cut) <= max(limit, 1)
    body = cut.removesuffix("…")
    # every '&' that survives starts a whole entity, and no raw '<' or '>' appears
    for index, char in enumerate(body):
        if char == "&":
            assert body[index:].startswith(("&amp;", "&lt;", "&gt;")), (raw, limit, cut)
    assert "<" not in body and ">" not in body
