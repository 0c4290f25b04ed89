"""Property tests: the engine against the naive reference, invariants after every command,
and snapshot/restore equivalence."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matching_reference import RefEngine
from matching_streams import INSTRUMENTS, RULES, Accounting, halt, seeded_stream, streams

from sampan.matching import Engine, Rules

PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _apply(engine: Engine, step: object) -> list:
    if isinstance(step, tuple):
        engine.add_instrument(halt(step[1], step[2]))
        return []
    return engine.process(step)  # type: ignore[arg-type]


def _compare_books(engine: Engine, ref: RefEngine) -> None:
    for instrument in INSTRUMENTS:
        sec = instrument.security
        assert engine.resting_orders(sec) == ref.resting_orders(sec)
        assert engine.depth(sec, 5) == ref.depth(sec, 5)
        assert engine.depth(sec, 50) == ref.depth(sec, 50)


def _run_against_reference(rules: Rules, stream: list) -> None:
    engine = Engine(rules, INSTRUMENTS)
    ref = RefEngine(rules, INSTRUMENTS)
    accounting = Accounting()
    for step in stream:
        got = _apply(engine, step)
        if isinstance(step, tuple):
            ref.books[step[1]].instrument = halt(step[1], step[2])
            continue
        want = ref.process(step)
        assert got == want, f"after {step}"
        assert got, "every command yields at least one event"
        engine.validate()
        accounting.check(got, rules.stp_enabled)
        _compare_books(engine, ref)


@PROFILE
@given(st.sampled_from(RULES), streams())
def test_engine_matches_reference(rules: Rules, stream: list) -> None:
    _run_against_reference(rules, stream)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(RULES), streams(), st.integers(0, 60))
def test_snapshot_restore_continues_identically(rules: Rules, stream: list, cut: int) -> None:
    original = Engine(rules, INSTRUMENTS)
    for step in stream[:cut]:
        _apply(original, step)
    blob = original.snapshot()
    restored = Engine.restore(blob)
    assert restored.snapshot() == blob
    for step in stream[cut:]:
        assert _apply(restored, step) == _apply(original, step)
        restored.validate()
    assert restored.snapshot() == original.snapshot()


def test_long_seeded_runs_match_reference() -> None:
    """Longer streams than hypothesis draws, so books get deep and order ids get reused."""
    for seed, rules in enumerate(RULES):
        _run_against_reference(rules, seeded_stream(seed, 1500))
