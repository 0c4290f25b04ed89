"""The journal's COPY text escaping keeps every character of an id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sampan.ledger_sink.store import _text


def _unescape(text: str) -> str:
    out, chars = [], iter(text)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars)
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[nxt])
        else:
            out.append(ch)
    return "".join(out)


@given(st.text())
def test_escaping_round_trips_and_leaves_no_raw_separators(value: str) -> None:
    escaped = _text(value)
    assert "\t" not in escaped and "\n" not in escaped and "\r" not in escaped
    assert _unescape(escaped) == value
