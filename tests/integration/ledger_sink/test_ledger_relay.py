"""Ledger postings on a topic exactly once: the outbox relay SIGKILLed (and the sink with it)
mid-stream and restarted puts every journal entry on ledger.postings once, and the ledger
rebuilt from that topic alone equals the live ledger; a relay that is behind is reported."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from conftest import SAMPAN, SinkProcess, run_cli, wait_for

from sampan.config import Settings
from sampan.ledger_sink import relay
from sampan.tools.bench.ledger import end_offsets, produce_fills, synthetic_fills

pytestmark = pytest.mark.integration
FILLS = 6_000


def _count(settings: Settings, schema: str, sql: str) -> int:
    with psycopg.connect(settings.database_url, options=f"-c search_path={schema}") as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _on_topic(settings: Settings) -> Counter[int]:
    return Counter(record["entry_id"] for _, _, record in relay.read_entries(settings))


class RelayProcess:
    def __init__(self, log_path: Path) -> None:
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [*SAMPAN, "ledger", "relay", "--batch-max", "200"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code


def _deposit(account: str, cents: int, ref: str) -> None:
    done = run_cli("ledger", "deposit", account, str(cents), "--ref", ref, "--member", "M9")
    assert done.returncode == 0, done.stdout + done.stderr


def test_relay_sigkilled_repeats_nothing_and_the_topic_rebuilds_the_ledger(
    env_settings: Settings,
    schema: str,
    sink_process: Callable[..., SinkProcess],
    tmp_path: Path,
) -> None:
    s = env_settings
    _deposit("FUNDED1", 5_000_000, "open-1")  # before the relay ever ran: relayed at its start
    # The fills arrive in four rounds, the next round only after a kill, so every kill lands in
    # a stream with more to come however fast the relay is.
    fills = list(synthetic_fills(FILLS, seed=11))
    rounds = [fills[n : n + FILLS // 4] for n in range(0, FILLS, FILLS // 4)]
    produce_fills(s, iter(rounds[0]))
    sink = sink_process("--batch-max", "250")
    relays = [RelayProcess(tmp_path / "relay.log")]
    entries = "SELECT count(*) FROM outbox"
    try:
        published = 0
        for kill in range(3):
            # Each kill lands mid-stream: each relay has published, more is to come.
            wait_for(
                lambda before=published: sum(_on_topic(s).values()) > before + 200,
                f"relay {kill} to publish",
            )
            relays[-1].kill()
            published = sum(_on_topic(s).values())
            produce_fills(s, iter(rounds[kill + 1]))
            if kill == 1:
                sink.kill()
                _deposit("FUNDED1", 1_000, "top-up-1")  # posted while the sink is down
                sink = sink_process("--batch-max", "250")
            relays.append(RelayProcess(tmp_path / "relay.log"))
        ends = end_offsets(s)
        wait_for(
            lambda: (
                _count(s, schema, "SELECT sum(next_offset) FROM consumer_offsets")
                == sum(ends.values())
            ),
            "the sink to reach the end of fills",
            120,
        )
        total = _count(s, schema, entries)
        assert total == FILLS + 2
        wait_for(lambda: len(_on_topic(s)) == total, "the relay to catch up", 120)
        on_topic = _on_topic(s)
        assert max(on_topic.values()) == 1, on_topic.most_common(3)
        assert relays[-1].terminate() == 0
        resumed = (tmp_path / "relay.log").read_text().count("resuming after Position(txid=")
        assert resumed == 4
    finally:
        for process in relays:
            if process.proc.poll() is None:
                process.kill()
            process.log.close()
    assert sink.terminate() == 0

    rebuilt = run_cli("ledger", "rebuild", "--from-topics")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "identical" in rebuilt.stdout and "journal: " in rebuilt.stderr

    # A movement the relay has not published: the rebuild says the topic is behind.
    _deposit("FUNDED1", 500, "top-up-2")
    behind = run_cli("ledger", "rebuild", "--from-topics")
    assert behind.returncode == 1 and "BEHIND: 1 of the live ledger's" in behind.stdout
