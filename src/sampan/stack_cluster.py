"""The local three-node Kafka cluster: `sampan stack up --brokers 3`.

Three KRaft nodes on 127.0.0.1, each both broker and controller (three voters are the smallest
quorum that survives a node's death), each with its own ports and folder under
`<state>/kafka-cluster/node-<id>/`: node `i` (1..3) listens for clients on
`SAMPAN_KAFKA_PORT + 2(i-1)` and for controllers on `SAMPAN_KAFKA_CONTROLLER_PORT + 2(i-1)`
(19092/19093, 19094/19095, 19096/19097 by default). Every topic, internal ones included, has
replication factor 3 and min ISR 2 (`deploy/kafka/cluster.properties.template`); the catalog's
topics get it from `SAMPAN_REPLICATION_FACTOR=3`, which `up` prints with the bootstrap list.

Guarantees: `up` is idempotent, refuses while the one-broker stack's broker runs in the same
state folder, and returns only when all three brokers are in the cluster's metadata and a
transactional producer initialises (so `__transaction_state` exists with its three replicas).
`down` stops only the nodes whose pid files `up` wrote. `start_node` restarts one node (a test
that killed it). Limits: PLAINTEXT listeners on loopback only; one machine, so a node's death
here is a process's death, not a disk's or a network's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

from sampan import stack
from sampan.config import Settings
from sampan.errors import StackError
from sampan.streams import profiles

NODE_COUNT = 3
REPLICATION_FACTOR = 3
CLUSTER_DIR = "kafka-cluster"
# Three JVMs start at once on a small machine: give them longer than the one broker gets.
CLUSTER_READY_TIMEOUT_S = 180
FORMAT_TIMEOUT_S = 120


@dataclass(frozen=True, slots=True)
class Node:
    node_id: int
    kafka_port: int
    controller_port: int
    paths: stack.Paths  # the node's own folder as a one-broker state folder: kafka/{data,logs}

    @property
    def properties(self) -> Path:
        return self.paths.kafka_dir / "server.properties"

    def pid(self) -> int | None:
        return stack._read_pid(self.paths.kafka_pid)


def cluster_dir(settings: Settings) -> Path:
    return settings.state_dir / CLUSTER_DIR


def nodes(settings: Settings) -> tuple[Node, ...]:
    return tuple(
        Node(
            node_id=i,
            kafka_port=settings.kafka_port + 2 * (i - 1),
            controller_port=settings.kafka_controller_port + 2 * (i - 1),
            paths=stack.Paths(cluster_dir(settings) / f"node-{i}"),
        )
        for i in range(1, NODE_COUNT + 1)
    )


def bootstrap(settings: Settings) -> str:
    return ",".join(f"127.0.0.1:{node.kafka_port}" for node in nodes(settings))


def client_settings(settings: Settings) -> Settings:
    """`settings` pointed at all three brokers, with the cluster's replication factor."""
    return dataclasses.replace(
        settings, kafka_bootstrap=bootstrap(settings), replication_factor=REPLICATION_FACTOR
    )


def is_cluster(settings: Settings) -> bool:
    """Whether `up --brokers 3` made this state folder's Kafka a cluster."""
    return cluster_dir(settings).is_dir()


def _cluster_id(settings: Settings) -> str:
    """One id for all three nodes, kept so a node formatted later joins the same cluster."""
    path = cluster_dir(settings) / "cluster.id"
    if path.exists():
        return path.read_text().strip()
    cluster_id = stack._kafka_cluster_id()
    path.write_text(cluster_id + "\n")
    return cluster_id


def _render(settings: Settings, node: Node) -> None:
    template = Template((stack.DEPLOY_DIR / "kafka" / "cluster.properties.template").read_text())
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes(settings))
    node.properties.write_text(
        template.substitute(
            node_id=node.node_id,
            voters=voters,
            kafka_port=node.kafka_port,
            controller_port=node.controller_port,
            log_dirs=str(node.paths.kafka_data),
        )
    )


def _format(settings: Settings, node: Node, libs: Path) -> None:
    if (node.paths.kafka_data / "meta.properties").exists():
        return
    node.paths.kafka_data.mkdir(parents=True, exist_ok=True)
    command = stack._java_command(
        libs,
        node.paths,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        _cluster_id(settings),
        "-c",
        str(node.properties),
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S)
    if result.returncode != 0:
        raise StackError(
            f"formatting node {node.node_id}'s storage failed:\n{result.stdout}{result.stderr}"
        )


def _launch(settings: Settings, node: Node, libs: Path) -> int:
    for port in (node.kafka_port, node.controller_port):
        if stack._port_busy(port):
            raise StackError(
                f"port {port} on 127.0.0.1 is busy but node {node.node_id} of ours does not run: "
                "stop what holds it or set SAMPAN_KAFKA_PORT / SAMPAN_KAFKA_CONTROLLER_PORT"
            )
    (node.paths.kafka_dir / "logs").mkdir(parents=True, exist_ok=True)
    _render(settings, node)
    _format(settings, node, libs)
    with node.paths.kafka_stdout.open("ab") as out:
        process = subprocess.Popen(
            stack._java_command(libs, node.paths, "kafka.Kafka", str(node.properties)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    node.paths.kafka_pid.write_text(f"{process.pid}\n")
    return process.pid


def _errors(log: Path, lines_max: int = 10) -> str:
    """The log's ERROR lines (the reason a node stopped is rarely in its last lines)."""
    if not log.exists():
        return ""
    errors = [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line]
    return "".join(f"{line}\n" for line in errors[:lines_max])


def _wait_brokers(settings: Settings, wanted: int) -> None:
    """Wait until the cluster's metadata lists `wanted` brokers, every node process alive."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + CLUSTER_READY_TIMEOUT_S
    admin = AdminClient(profiles.admin(client_settings(settings), log_level=0))
    seen = 0
    while True:
        for node in nodes(settings):
            if node.pid() is None and node.paths.kafka_pid.exists():
                raise StackError(
                    f"Kafka node {node.node_id} died while starting\n"
                    + _errors(node.paths.kafka_log)
                    + stack._tail(node.paths.kafka_log)
                    + "\n"
                    + stack._tail(node.paths.kafka_stdout, 10)
                )
        try:
            seen = len(admin.list_topics(timeout=2).brokers)
        except KafkaException:
            seen = 0
        if seen >= wanted:
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"the cluster on {bootstrap(settings)} showed {seen} of {wanted} brokers within "
                f"{CLUSTER_READY_TIMEOUT_S} s\n" + stack._tail(nodes(settings)[0].paths.kafka_log)
            )
        time.sleep(0.5)


def start_nodes(settings: Settings) -> list[str]:
    """Start every node that is not running; wait until all three serve transactions."""
    if stack._read_pid(stack.Paths(settings.state_dir).kafka_pid) is not None:
        raise StackError(
            "the one-broker stack's Kafka runs in this state folder: `sampan stack down` first, "
            "or use another SAMPAN_STATE_DIR for the cluster"
        )
    cluster_dir(settings).mkdir(parents=True, exist_ok=True)
    libs = stack.ensure_kafka_jars()
    lines = []
    for node in nodes(settings):
        pid = node.pid()
        if pid is None:
            pid = _launch(settings, node, libs)
            verb = "started"
        else:
            verb = "already running"
        lines.append(
            f"kafka node {node.node_id} {verb} (pid {pid}) on 127.0.0.1:{node.kafka_port}, "
            f"controller 127.0.0.1:{node.controller_port}"
        )
    _wait_brokers(settings, NODE_COUNT)
    first = nodes(settings)[0]
    pid = first.pid()
    assert pid is not None, "node 1 was started above"
    stack.wait_kafka_ready(client_settings(settings), first.paths, pid)
    lines.append(
        f"cluster ready: export SAMPAN_KAFKA_BOOTSTRAP={bootstrap(settings)} "
        f"SAMPAN_REPLICATION_FACTOR={REPLICATION_FACTOR}"
    )
    return lines


def start_node(settings: Settings, node_id: int) -> int:
    """Start one stopped node (after a test killed it); returns its pid without waiting."""
    node = nodes(settings)[node_id - 1]
    pid = node.pid()
    return pid if pid is not None else _launch(settings, node, stack.ensure_kafka_jars())


def wait_all_brokers(settings: Settings) -> None:
    _wait_brokers(settings, NODE_COUNT)


def up(settings: Settings) -> list[str]:
    """PostgreSQL as the one-broker stack runs it, and the three Kafka nodes."""
    paths = stack.Paths(settings.state_dir)
    paths.state.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        paths.state.chmod(0o755)
    placed = stack.place_postgres(paths)
    lines = [placed] if placed else []
    return [*lines, stack.start_postgres(settings, paths), *start_nodes(settings)]


def stop_nodes(settings: Settings) -> list[str]:
    if not is_cluster(settings):
        return []
    return [stack.stop_pid(n.paths.kafka_pid, f"kafka node {n.node_id}") for n in nodes(settings)]


def active_controller(settings: Settings) -> int | None:
    """The quorum leader as the running nodes last recorded it (highest epoch wins)."""
    best: tuple[int, int] | None = None
    for node in nodes(settings):
        if node.pid() is None:
            continue
        path = node.paths.kafka_data / "__cluster_metadata-0" / "quorum-state"
        try:
            state = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            continue
        leader, epoch = int(state.get("leaderId", -1)), int(state.get("leaderEpoch", -1))
        if leader > 0 and (best is None or epoch > best[1]):
            best = (leader, epoch)
    return best[0] if best else None


def status_lines(settings: Settings) -> list[str]:
    if not is_cluster(settings):
        return []
    controller = active_controller(settings)
    lines = []
    for node in nodes(settings):
        pid = node.pid()
        role = "  active controller" if pid and node.node_id == controller else ""
        lines.append(
            f"kafka-{node.node_id}   {'running, pid ' + str(pid) if pid else 'stopped'}"
            f"  127.0.0.1:{node.kafka_port} controller :{node.controller_port}"
            f"  data {node.paths.kafka_data}{role}"
        )
    return lines
