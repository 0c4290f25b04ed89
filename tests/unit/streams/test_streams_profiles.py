"""Every Kafka client in src/ is configured by a `streams.profiles` profile (so an option
every client needs is set once), and every producer profile sets the same partitioner (one
partitioner per topic across its writers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sampan
from sampan.config import settings
from sampan.streams import profiles

SRC = Path(sampan.__file__).parent
PROFILES = {
    "Producer": {"producer", "transactional_producer"},
    "Consumer": {"group_consumer", "follower", "end_reader", "lookup"},
    "AdminClient": {"admin"},
}
# Functions of the exactly-once loop, the ledger sink and the feed handler that name their
# profile's arguments; each calls one profile (and `.kafka(` is banned outside profiles).
WRAPPERS = {
    "Producer": {"producer_config"},
    "Consumer": {"consumer_config"},
    "AdminClient": set(),
}
HOME = {SRC / "streams" / "profiles.py", SRC / "config.py"}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def client_configs(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, client class, how its config is made) for every `Producer(...)`,
    `Consumer(...)` and `AdminClient(...)` call in `tree`; the config of a client built from
    a variable is traced to the variable's last assignment before the call."""
    assigned: dict[str, list[tuple[int, ast.expr]]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append((node.lineno, node.value))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        client = _name(node.func)
        if client not in PROFILES:
            continue
        arg = node.args[0] if node.args else None
        if isinstance(arg, ast.Name):
            before = [v for line, v in assigned.get(arg.id, []) if line <= node.lineno]
            arg = before[-1] if before else arg
        if isinstance(arg, ast.Call) and _name(arg.func) is not None:
            found.append((node.lineno, client, str(_name(arg.func))))
        else:
            found.append((node.lineno, client, ast.unparse(arg) if arg is not None else "nothing"))
    return sorted(found)


def kafka_calls(tree: ast.AST) -> list[int]:
    """Lines that call `.kafka(...)` (`Settings.kafka`: librdkafka options made by hand)."""
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "kafka"
    )


def test_every_kafka_client_in_src_comes_from_a_profile() -> None:
    breaches = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        where = f"src/sampan/{path.relative_to(SRC)}"
        for line, client, made_by in client_configs(tree):
            if made_by not in PROFILES[client] | WRAPPERS[client]:
                breaches.append(f"{where}:{line}: {client} from {made_by}")
        if path not in HOME:
            breaches += [f"{where}:{line}: options made by hand" for line in kafka_calls(tree)]
    assert not breaches, "Kafka clients configured by hand:\n" + "\n".join(breaches)


def test_the_checker_sees_a_hand_made_client() -> None:
    tree = ast.parse(
        "Producer(profiles.producer(s))\n"
        "Producer(s.kafka(**{'acks': 'all'}))\n"
        "Producer(transactional_producer(s, 'x', transaction_timeout_ms=1))\n"
        "Consumer({'bootstrap.servers': 'b'})\n"
        "c = profiles.end_reader(s, 'g')\n"
        "Consumer(c)\n"
        "AdminClient(s.kafka())\n"
    )
    assert client_configs(tree) == [
        (1, "Producer", "producer"),
        (2, "Producer", "kafka"),
        (3, "Producer", "transactional_producer"),
        (4, "Consumer", "{'bootstrap.servers': 'b'}"),
        (6, "Consumer", "end_reader"),
        (7, "AdminClient", "kafka"),
    ]
    assert kafka_calls(tree) == [2, 7]


def test_every_consumer_profile_reads_committed_records_and_commits_nothing_itself() -> None:
    current = settings()
    made = [
        profiles.group_consumer(current, "g", "1", session_timeout_ms=10_000),
        profiles.group_consumer(current, "g", None, session_timeout_ms=10_000),
        profiles.follower(current, "g"),
        profiles.end_reader(current, "g"),
    ]
    for config in made:
        assert config["isolation.level"] == "read_committed"
        assert config["enable.auto.commit"] is False
        assert config["enable.auto.offset.store"] is False
    assert made[0]["group.instance.id"] == "g-1"
    assert "group.instance.id" not in made[1]
    assert made[3]["enable.partition.eof"] is True
    assert profiles.lookup(current, "g")["enable.auto.commit"] is False


def test_every_profile_starts_from_the_deployments_options() -> None:
    """An option set for every client (SAMPAN_KAFKA_CONFIG) reaches every profile."""
    import dataclasses

    current = dataclasses.replace(settings(), kafka_extra={"client.rack": "r1"})
    made = [
        profiles.producer(current),
        profiles.transactional_producer(current, "t", transaction_timeout_ms=10_000),
        profiles.group_consumer(current, "g", "1", session_timeout_ms=10_000),
        profiles.follower(current, "g"),
        profiles.end_reader(current, "g"),
        profiles.lookup(current, "g"),
        profiles.admin(current),
    ]
    for config in made:
        assert config["client.rack"] == "r1"
        assert config["bootstrap.servers"] == current.kafka_bootstrap


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
