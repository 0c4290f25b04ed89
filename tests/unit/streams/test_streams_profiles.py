"""One partitioner per topic across its writers: every producer in src/ is built from a
`streams.profiles` producer profile, and every such profile sets the same partitioner."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sampan
from sampan.config import settings
from sampan.streams import profiles

SRC = Path(sampan.__file__).parent
PRODUCER_PROFILES = {"producer", "transactional_producer"}


def producer_configs(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, how the config is made) for every `Producer(...)` call in `tree`."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Producer"):
            continue
        arg = node.args[0] if node.args else None
        if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute | ast.Name):
            made_by = arg.func.attr if isinstance(arg.func, ast.Attribute) else arg.func.id
            # runtime.producer_config is the exactly-once loop's transactional profile.
            found.append((node.lineno, made_by))
        else:
            found.append((node.lineno, ast.unparse(arg) if arg is not None else "nothing"))
    return sorted(found)


def test_every_producer_in_src_comes_from_a_profile() -> None:
    allowed = PRODUCER_PROFILES | {"producer_config"}
    breaches = []
    for path in sorted(SRC.rglob("*.py")):
        for line, made_by in producer_configs(ast.parse(path.read_text())):
            if made_by not in allowed:
                breaches.append(f"src/sampan/{path.relative_to(SRC)}:{line}: {made_by}")
    assert not breaches, "producers configured by hand:\n" + "\n".join(breaches)


def test_the_checker_sees_a_hand_made_producer() -> None:
    tree = ast.parse(
        "Producer(profiles.producer(s))\n"
        "Producer(s.kafka(**{'acks': 'all'}))\n"
        "Producer(transactional_producer(s, 'x', transaction_timeout_ms=1))\n"
    )
    assert producer_configs(tree) == [
        (1, "producer"),
        (2, "kafka"),
        (3, "transactional_producer"),
    ]


def test_every_producer_profile_uses_the_one_partitioner() -> None:
    current = settings()
    made = [
        profiles.producer(current),
        profiles.producer(current, linger_ms=0, **{"compression.type": "lz4"}),
        profiles.transactional_producer(current, "t", transaction_timeout_ms=10_000),
    ]
    for config in made:
        assert config["partitioner"] == profiles.PARTITIONER == "murmur2_random"
        assert config["enable.idempotence"] is True
        assert config["acks"] == "all"


def test_a_caller_cannot_choose_another_partitioner() -> None:
    with pytest.raises(AssertionError):
        profiles.producer(settings(), **{"partitioner": "consistent_random"})


def test_the_runtime_loop_uses_the_transactional_profile() -> None:
    from sampan.streams.runtime import AgentConfig, producer_config

    config = producer_config(settings(), "g", AgentConfig())
    assert config["partitioner"] == profiles.PARTITIONER
    assert config["transactional.id"] == "g-0"
