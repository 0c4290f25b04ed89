"""`sampan stack up --brokers 3`: three KRaft nodes, replication factor 3 and min ISR 2 on the
catalog's topics and on Kafka's internal ones, each node in `stack status`, all stopped by
`stack down`. A private stack on its own ports (below the kernel's ephemeral range) and folder;
the shared stack is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sampan import stack, stack_cluster, topics
from sampan.config import Settings, settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPAN = [sys.executable, "-m", "sampan.cli"]
STACK_TIMEOUT_S = 360
ADMIN_TIMEOUT_S = 30
KAFKA_PORT = 26092  # nodes on 26092/26093, 26094/26095, 26096/26097
PG_PORT = 26432


def _sampan(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SAMPAN, *args], env=env, capture_output=True, text=True, timeout=STACK_TIMEOUT_S
    )


def _private_env(state: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SAMPAN_KAFKA_BOOTSTRAP", "SAMPAN_DATABASE_URL", "SAMPAN_TOPIC_PREFIX")
    }
    return env | {
        "SAMPAN_STATE_DIR": str(state),
        "SAMPAN_KAFKA_PORT": str(KAFKA_PORT),
        "SAMPAN_KAFKA_CONTROLLER_PORT": str(KAFKA_PORT + 1),
        "SAMPAN_PG_PORT": str(PG_PORT),
    }


def _create_offsets_topic(bootstrap: str) -> None:
    """A group coordinator's first lookup makes the broker create `__consumer_offsets`."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cluster-test"})
    try:
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        while "__consumer_offsets" not in consumer.list_topics(timeout=ADMIN_TIMEOUT_S).topics:
            assert time.monotonic() < deadline, "no __consumer_offsets after a group's lookup"
            consumer.subscribe(["fills"])
            consumer.poll(1.0)
    finally:
        consumer.close()


def _replicas_and_min_isr(bootstrap: str, names: list[str]) -> dict[str, tuple[int, str]]:
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    described = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, name) for name in names],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    min_isr = {
        res.name: fut.result(timeout=ADMIN_TIMEOUT_S)["min.insync.replicas"].value
        for res, fut in described.items()
    }
    return {
        name: (min(len(p.replicas) for p in metadata[name].partitions.values()), min_isr[name])
        for name in names
    }


def test_three_node_stack_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = _private_env(state)
    try:
        up = _sampan(env, "stack", "up", "--brokers", "3")
        assert up.returncode == 0, up.stdout + up.stderr
        bootstrap = ",".join(f"127.0.0.1:{KAFKA_PORT + 2 * i}" for i in range(3))
        assert f"SAMPAN_KAFKA_BOOTSTRAP={bootstrap}" in up.stdout, up.stdout

        status = _sampan(env, "stack", "status")
        assert status.returncode == 0, status.stderr
        for node_id in (1, 2, 3):
            line = next(
                (s for s in status.stdout.splitlines() if s.startswith(f"kafka-{node_id} ")), ""
            )
            assert "running, pid" in line and f":{KAFKA_PORT + 2 * (node_id - 1)}" in line, (
                status.stdout
            )
        assert status.stdout.count("active controller") == 1, status.stdout

        cluster_env = env | {"SAMPAN_KAFKA_BOOTSTRAP": bootstrap, "SAMPAN_REPLICATION_FACTOR": "3"}
        applied = _sampan(cluster_env, "topics", "apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        _create_offsets_topic(bootstrap)
        names = [t.name for t in topics.ALL] + ["__transaction_state", "__consumer_offsets"]
        found = _replicas_and_min_isr(bootstrap, names)
        wrong = {name: got for name, got in found.items() if got != (3, "2")}
        assert not wrong, f"topics not on 3 replicas with min ISR 2: {wrong}"

        again = _sampan(env, "stack", "up")
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout
        one = _sampan(env, "stack", "up", "--brokers", "1")
        assert one.returncode != 0 and "three-node cluster" in one.stderr, one.stdout + one.stderr

        pids = [n.pid() for n in stack_cluster.nodes(_settings_of(env))]
        assert all(pids), pids
        down = _sampan(env, "stack", "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert not any(stack._pid_alive(pid) for pid in pids if pid), "a node outlived down"
        stopped = _sampan(env, "stack", "status")
        assert stopped.stdout.count("stopped") >= 4, stopped.stdout  # three nodes, PostgreSQL
    finally:
        _sampan(env, "stack", "reset")


def _settings_of(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
