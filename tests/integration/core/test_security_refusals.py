"""The closed network refuses, on the real broker and database.

Each refusal is the broker's or PostgreSQL's own answer: a client without credentials or with
a wrong password cannot connect; a principal cannot write or read a topic its process has no
business with (and the broker's authorizer log names the principal); PostgreSQL takes no
connection without TLS or with a wrong password. Each refusal sits beside what the same
principal may do, so a broken stack cannot pass for a closed one.

The stack: the session's when it was created secured (`SAMPAN_STACK_SECURITY=on`), otherwise a
private secured stack on ports of its own, stopped and removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from topic_namespace import new_prefix, topic_namespace

from sampan import stack
from sampan.config import Settings, settings
from sampan.credentials import LocalSecurity

pytestmark = pytest.mark.integration

PRIVATE_PORTS = {
    "SAMPAN_KAFKA_PORT": "39192",
    "SAMPAN_KAFKA_CONTROLLER_PORT": "39193",
    "SAMPAN_PG_PORT": "35532",
}
STACK_TIMEOUT_S = 300.0
REFUSAL_TIMEOUT_S = 20.0
SAMPAN = [sys.executable, "-m", "sampan.cli"]


def _stack(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SAMPAN, "stack", action],
        env=env,
        capture_output=True,
        text=True,
        timeout=STACK_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def secured(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings (the operator's) of a secured stack, with a fresh topic namespace and its ACLs."""
    with pytest.MonkeyPatch.context() as env:
        private = not LocalSecurity.of(stack_settings.state_dir).present()
        if private:
            state = tmp_path_factory.mktemp("secured") / ".state"
            for name in ("SAMPAN_KAFKA_BOOTSTRAP", "SAMPAN_DATABASE_URL"):
                env.delenv(name, raising=False)
            for name, value in {
                **PRIVATE_PORTS,
                "SAMPAN_STATE_DIR": str(state),
                "SAMPAN_STACK_SECURITY": "on",
            }.items():
                env.setenv(name, value)
            up = _stack("up", dict(os.environ))
            assert up.returncode == 0, up.stdout + up.stderr
        env.setenv("SAMPAN_TOPIC_PREFIX", new_prefix())
        try:
            current = settings()
            assert LocalSecurity.of(current.state_dir).present()
            with topic_namespace(current):
                yield current
        finally:
            if private:
                down = _stack("reset", dict(os.environ))
                assert down.returncode == 0, down.stdout + down.stderr


def _produce(current: Settings, topic: str) -> str | None:
    """Produce one record as `current.principal`; the delivery error's name, or None."""
    from confluent_kafka import Producer

    from sampan.streams import profiles

    outcome: list[str | None] = []
    producer = Producer(profiles.producer(current, **{"message.timeout.ms": 15_000}))
    producer.produce(
        current.topic(topic),
        key=b"ACC1",
        value=b"not a record",
        on_delivery=lambda error, _message: outcome.append(error.name() if error else None),
    )
    producer.flush(REFUSAL_TIMEOUT_S)
    assert outcome, f"no delivery report for {topic} within {REFUSAL_TIMEOUT_S} s"
    return outcome[0]


def _read(current: Settings, topic: str) -> str | None:
    """Subscribe to `topic` as `current.principal`; the broker's error's name, or None when
    the subscription is accepted (an assignment or the end of a partition)."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        current.kafka(
            **{
                "group.id": f"sampan-reader-refusal-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                "enable.auto.commit": False,
            }
        )
    )
    try:
        consumer.subscribe([current.topic(topic)])
        deadline = time.monotonic() + REFUSAL_TIMEOUT_S
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return None
            if error.name() == "_PARTITION_EOF":
                return None
            return str(error.name())
        raise AssertionError(f"no answer for {topic} within {REFUSAL_TIMEOUT_S} s")
    finally:
        consumer.close()


def _connect_error(config: dict[str, object]) -> list[str]:
    """The errors a client with `config` meets trying to reach the broker (empty: it got in)."""
    from confluent_kafka import Producer

    errors: list[str] = []
    producer = Producer({**config, "error_cb": lambda error: errors.append(str(error))})
    deadline = time.monotonic() + REFUSAL_TIMEOUT_S
    while not errors and time.monotonic() < deadline:
        try:
            producer.list_topics(timeout=1)
            break
        except Exception as error:
            errors.append(str(error))
        producer.poll(0.2)
    return errors


def _denied_in_broker_log(current: Settings, principal: str, topic: str) -> bool:
    log = stack.Paths(current.state_dir).kafka_log.read_text(errors="replace")
    return (
        f"Principal = User:{principal} is Denied" in log
        and f"Topic:LITERAL:{current.topic(topic)}" in log
    )


def test_no_credentials_and_a_wrong_password_are_refused(secured: Settings) -> None:
    bootstrap = {"bootstrap.servers": secured.kafka_bootstrap, "log_level": 0}
    plaintext = _connect_error(bootstrap)
    assert plaintext, "a PLAINTEXT client without credentials reached the broker"

    wrong = secured.kafka(log_level=0)
    wrong["sasl.password"] = "not-the-password"
    refused = _connect_error(wrong)
    assert any("invalid credentials" in line for line in refused), refused

    assert _connect_error(secured.kafka()) == [], "the right password must get in"


def test_screen_cannot_write_orders_internal_or_fills(secured: Settings) -> None:
    screen = settings(principal="ui_bridge")
    assert _produce(screen, "orders.requests") is None
    for topic in ("orders.internal", "fills"):
        assert _produce(screen, topic) == "TOPIC_AUTHORIZATION_FAILED", topic
        assert _denied_in_broker_log(secured, "ui_bridge", topic)


def test_analytics_cannot_write_fills_or_read_accounts(secured: Settings) -> None:
    analytics = settings(principal="analytics")
    assert _produce(analytics, "md.movers") is None
    assert _read(analytics, "md.trades") is None
    assert _produce(analytics, "fills") == "TOPIC_AUTHORIZATION_FAILED"
    assert _read(analytics, "reference.accounts") == "TOPIC_AUTHORIZATION_FAILED"
    assert _denied_in_broker_log(secured, "analytics", "reference.accounts")


def test_matcher_cannot_read_balances(secured: Settings) -> None:
    matcher = settings(principal="matcher")
    assert _read(matcher, "orders.internal") is None
    assert _read(matcher, "ledger.balances") == "TOPIC_AUTHORIZATION_FAILED"
    assert _denied_in_broker_log(secured, "matcher", "ledger.balances")


def test_database_takes_tls_and_the_password_only(secured: Settings) -> None:
    with psycopg.connect(secured.database_url, connect_timeout=10) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)
    local = LocalSecurity.of(secured.state_dir)
    plain = f"postgresql://sampan@127.0.0.1:{secured.pg_port}/sampan?sslmode=disable&passfile={local.pgpass}"
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(plain, connect_timeout=10)
    wrong = (
        f"postgresql://sampan:not-the-password@127.0.0.1:{secured.pg_port}/sampan"
        f"?sslmode=verify-full&sslrootcert={local.ca_file}"
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)


def test_secrets_are_private_files(secured: Settings) -> None:
    local = LocalSecurity.of(secured.state_dir)
    assert (local.root.stat().st_mode & 0o777) == 0o700
    secrets = [local.ca_key, local.server_key, local.broker_keystore, local.pgpass]
    secrets += list((local.root / "kafka").iterdir())
    for path in secrets:
        assert (path.stat().st_mode & 0o077) == 0, f"{path} is readable by others"
    properties = stack.Paths(secured.state_dir).kafka_dir / "server.properties"
    assert (properties.stat().st_mode & 0o077) == 0
    assert "PLAINTEXT://" not in properties.read_text()
    assert "allow.everyone.if.no.acl.found=false" in properties.read_text()
    assert Path(local.ca_file).read_text().startswith("-----BEGIN CERTIFICATE-----")


class _FixClient:
    def __init__(self) -> None:
        self.logons = 0
        self.ended: list[str] = []
        self.done = asyncio.Event()

    def on_logon(self, conn: object) -> None:
        self.logons += 1
        self.done.set()

    def on_message(self, conn: object, msg: object) -> None:
        pass

    def on_session_ended(self, conn: object, reason: str, was_logged_on: bool) -> None:
        self.ended.append(reason)
        self.done.set()


async def _fix_logon(port: int, password: str | None) -> tuple[_FixClient, list[str]]:
    from sampan.fix.session import Session
    from sampan.fix.session_types import SessionConfig, SessionRole
    from sampan.fix.store import MemorySessionStore
    from sampan.fix.transport import open_initiator

    client = _FixClient()
    config = SessionConfig(SessionRole.INITIATOR, "SAMPAN", "HKEX", password=password)
    session = Session(config, MemorySessionStore())
    conn = await open_initiator("127.0.0.1", port, session, client)
    task = asyncio.create_task(conn.run())
    try:
        await asyncio.wait_for(client.done.wait(), REFUSAL_TIMEOUT_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return client, client.ended


def test_the_simulator_checks_the_firms_fix_password(secured: Settings, tmp_path: Path) -> None:
    from sampan import credentials
    from sampan.hkex_sim.market import ListedSecurity, Market
    from sampan.hkex_sim.ocg_gateway import FirmConfig, Gateway, GatewayConfig

    async def scenario() -> None:
        market = Market([ListedSecurity(5, "HSBC HOLDINGS", 400, 98_550)])
        firm = FirmConfig("SAMPAN", "SAMPANDC", throttle_per_s=0)
        gateway = Gateway(GatewayConfig((firm,), state_dir=tmp_path / "sim"), market)
        await gateway.start()
        try:
            refused, why = await _fix_logon(gateway.order_port, "not-the-password")
            assert refused.logons == 0 and any("invalid username or password" in r for r in why)
            right = credentials.session_password("SAMPAN")
            assert right is not None, "a secured stack has the firm's FIX password"
            accepted, _ = await _fix_logon(gateway.order_port, right)
            assert accepted.logons == 1
        finally:
            await gateway.close()

    asyncio.run(scenario())
