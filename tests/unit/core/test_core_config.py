from pathlib import Path

import pytest

from sampan import topics
from sampan.cli import build_parser
from sampan.config import settings
from sampan.errors import ConfigError
from sampan.stack import _port_busy


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A state folder of a stack created without security (a secured one adds TLS and SASL).
    monkeypatch.setenv("SAMPAN_STATE_DIR", str(tmp_path))
    for name in (
        "SAMPAN_KAFKA_BOOTSTRAP",
        "SAMPAN_DATABASE_URL",
        "SAMPAN_TOPIC_PREFIX",
        "SAMPAN_KAFKA_PORT",
        "SAMPAN_PG_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    current = settings()
    assert current.kafka_bootstrap == "127.0.0.1:19092"
    assert current.database_url == "postgresql://sampan@127.0.0.1:15432/sampan"
    assert current.topic("fills") == "fills"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAMPAN_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SAMPAN_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("SAMPAN_KAFKA_CONFIG", "security.protocol=SASL_SSL; sasl.mechanism=PLAIN")
    monkeypatch.setenv("SAMPAN_TOPIC_PREFIX", "prod.")
    current = settings()
    assert current.kafka(**{"acks": "all"}) == {
        "bootstrap.servers": "k1:9092,k2:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "acks": "all",
    }
    assert current.topic("fills") == "prod.fills"


@pytest.mark.parametrize(
    ("name", "value"), [("SAMPAN_PG_PORT", "five"), ("SAMPAN_KAFKA_CONFIG", "novalue")]
)
def test_bad_settings_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        settings()


def test_catalog_is_consistent() -> None:
    names = [t.name for t in topics.ALL]
    assert len(names) == len(set(names))
    for t in topics.CATALOG:
        assert t.cleanup in {"delete", "compact"}
        assert t.partitions >= 1
        assert t.writers and t.readers
    assert topics.dead_letter_of("fills") == "fills.dlq"
    assert topics.topic("fills").configs(1)["retention.ms"] == "-1"
    assert topics.topic("md.depth").configs(3) == {
        "cleanup.policy": "compact",
        "min.insync.replicas": "2",
    }


def test_on_three_replicas_every_topic_has_the_same_durability() -> None:
    # router.state included: the catalog alone creates topics, with its min ISR.
    for t in topics.ALL:
        assert t.configs(3)["min.insync.replicas"] == "2", t.name
    assert topics.topic("router.state").configs(3)["min.insync.replicas"] == "2"


def test_busy_port_is_detected() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert _port_busy(holder.getsockname()[1])


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("stack", "topics", "demo", "bench"):
        assert command in out


def test_an_unreachable_database_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sampan.cli import main

    monkeypatch.setenv("SAMPAN_DATABASE_URL", "postgresql://sampan@127.0.0.1:1/sampan")
    assert main(["ledger", "verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sampan ledger: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2
