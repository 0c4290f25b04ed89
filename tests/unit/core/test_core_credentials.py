"""Where a process's credentials come from: the environment first, then the stack's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampan import credentials
from sampan.config import settings
from sampan.errors import ConfigError


def _secured_state(tmp_path: Path) -> Path:
    local = credentials.LocalSecurity.of(tmp_path)
    (local.root / "kafka").mkdir(parents=True)
    local.ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    for principal in credentials.PRINCIPALS:
        path = local.password_file(principal)
        path.write_text(f"pw-{principal}\n")
        path.chmod(0o600)
    local.pgpass.write_text("127.0.0.1:1:*:sampan:x\n")
    local.pgpass.chmod(0o600)
    return tmp_path


def test_a_plaintext_stack_gets_no_security(tmp_path: Path) -> None:
    assert credentials.kafka_security({}, tmp_path, "router") == {}
    assert credentials.local_database_url(tmp_path, 15432) is None


def test_a_secured_stack_gives_each_principal_its_own_password(tmp_path: Path) -> None:
    state = _secured_state(tmp_path)
    router = credentials.kafka_security({}, state, "router")
    assert router["security.protocol"] == "SASL_SSL"
    assert router["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (router["sasl.username"], router["sasl.password"]) == ("router", "pw-router")
    assert router["ssl.ca.location"] == str(state / "security" / "ca.pem")
    url = credentials.local_database_url(state, 35432)
    assert url is not None and "sslmode=verify-full" in url and "passfile=" in url
    assert "pw-" not in url


def test_the_environment_wins_and_a_password_file_must_be_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _secured_state(tmp_path)
    secret = tmp_path / "router.secret"
    secret.write_text("from-a-file\n")
    env = {"SAMPAN_KAFKA_USERNAME": "venue-router", "SAMPAN_KAFKA_PASSWORD_FILE": str(secret)}
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        credentials.kafka_security(env, state, "router")
    secret.chmod(0o600)
    config = credentials.kafka_security(env, state, "router")
    assert (config["sasl.username"], config["sasl.password"]) == ("venue-router", "from-a-file")
    with pytest.raises(ConfigError, match="SAMPAN_KAFKA_PASSWORD"):
        credentials.kafka_security({"SAMPAN_KAFKA_USERNAME": "x"}, state, "router")


def test_settings_never_print_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPAN_STATE_DIR", str(_secured_state(tmp_path)))
    for name in ("SAMPAN_KAFKA_USERNAME", "SAMPAN_DATABASE_URL", "SAMPAN_PRINCIPAL"):
        monkeypatch.delenv(name, raising=False)
    current = settings(principal="matcher")
    assert current.kafka()["sasl.password"] == "pw-matcher"
    assert "pw-matcher" not in repr(current)
    assert settings().principal == credentials.ADMIN


def test_each_process_command_runs_as_its_principal() -> None:
    from sampan.cli import COMMAND_PRINCIPALS

    assert set(COMMAND_PRINCIPALS.values()) <= set(credentials.PRINCIPALS)
    credentials.run_as("router")
    try:
        assert settings().principal == "router"
    finally:
        credentials.done_as("router")
    assert credentials.current_principal() == credentials.ADMIN
