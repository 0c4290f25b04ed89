"""verify's comparison: a matcher behind its input is not a matcher that is wrong."""

from __future__ import annotations

from typing import Any

from sampan.matcher.verify import first_difference

G = ("fills", "ACC1", 700)


def _records(n: int) -> list[dict[str, Any]]:
    return [{"exec_id": f"X{i}"} for i in range(n)]


def test_committed_prefix_past_what_is_due_is_no_difference() -> None:
    assert first_difference({G: _records(5)}, {G: _records(3)}, {G: 3}) is None


def test_missing_due_record_is_a_difference() -> None:
    found = first_difference({G: _records(5)}, {G: _records(2)}, {G: 3})
    assert found is not None and "record 2" in found and "committed: None" in found


def test_wrong_or_extra_record_is_a_difference_even_when_behind() -> None:
    wrong = [*_records(2), {"exec_id": "other"}]
    assert first_difference({G: _records(5)}, {G: wrong}, {G: 0}) is not None
    assert first_difference({G: _records(2)}, {G: _records(3)}, {G: 0}) is not None


def test_without_due_every_record_is_due() -> None:
    assert first_difference({G: _records(5)}, {G: _records(3)}) is not None
