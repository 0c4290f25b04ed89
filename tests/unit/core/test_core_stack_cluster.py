"""The three-node stack's layout: ports, folders and the rendered node configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sampan import stack_cluster
from sampan.config import Settings, settings


def _settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(
        settings(), state_dir=tmp_path, kafka_port=26092, kafka_controller_port=26093
    )


def test_nodes_have_their_own_ports_and_folders(tmp_path: Path) -> None:
    nodes = stack_cluster.nodes(_settings(tmp_path))
    assert [(n.node_id, n.kafka_port, n.controller_port) for n in nodes] == [
        (1, 26092, 26093),
        (2, 26094, 26095),
        (3, 26096, 26097),
    ]
    assert len({n.paths.kafka_data for n in nodes}) == 3
    assert all(n.paths.kafka_data.is_relative_to(tmp_path / "kafka-cluster") for n in nodes)
    assert stack_cluster.bootstrap(_settings(tmp_path)) == (
        "127.0.0.1:26092,127.0.0.1:26094,127.0.0.1:26096"
    )


def test_rendered_node_config_replicates_everything(tmp_path: Path) -> None:
    current = _settings(tmp_path)
    node = stack_cluster.nodes(current)[1]
    node.paths.kafka_dir.mkdir(parents=True)
    stack_cluster._render(current, node)
    config = dict(
        line.split("=", 1)
        for line in node.properties.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert config["node.id"] == "2"
    assert config["controller.quorum.voters"] == (
        "1@127.0.0.1:26093,2@127.0.0.1:26095,3@127.0.0.1:26097"
    )
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:26094,CONTROLLER://127.0.0.1:26095"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert config[key] == "3", key
    for key in ("min.insync.replicas", "transaction.state.log.min.isr"):
        assert config[key] == "2", key
    assert config["unclean.leader.election.enable"] == "false"
