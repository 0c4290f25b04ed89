"""`sampan topics render`: the catalog as Strimzi KafkaTopic resources, checked against the
catalog itself and read back from the YAML text the command prints."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sampan import topics, topics_render
from sampan.cli import main

K8S_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")


def _read_yaml(text: str) -> list[dict[str, Any]]:
    """Reads the subset `to_yaml` writes: nested mappings, two spaces a level, JSON scalars."""
    documents: list[dict[str, Any]] = []
    for chunk in text.split("---\n")[1:]:
        root: dict[str, Any] = {}
        stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
        for line in chunk.splitlines():
            indent = len(line) - len(line.lstrip(" "))
            key, _, rest = line.strip().partition(": ")
            while stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1]
            if line.endswith(":") and not rest:
                child: dict[str, Any] = {}
                parent[key.rstrip(":")] = child
                stack.append((indent, child))
            else:
                parent[json.loads(key) if key.startswith('"') else key] = json.loads(rest)
        documents.append(root)
    return documents


def test_every_catalog_topic_is_one_kafka_topic_resource() -> None:
    resources = topics_render.kafka_topics("", "prod", 3)
    by_topic = {r["spec"]["topicName"]: r for r in resources}
    assert len(resources) == len(topics.ALL) == len(by_topic)
    for topic in topics.ALL:
        resource = by_topic[topic.name]
        assert resource["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert resource["kind"] == "KafkaTopic"
        assert resource["metadata"]["labels"] == {"strimzi.io/cluster": "prod"}
        assert K8S_NAME.match(resource["metadata"]["name"]), resource["metadata"]["name"]
        assert resource["spec"]["partitions"] == topic.partitions
        assert resource["spec"]["replicas"] == 3
        assert resource["spec"]["config"] == topic.configs(3)
        assert resource["spec"]["config"]["min.insync.replicas"] == "2"
    assert by_topic["fills"]["spec"]["config"]["retention.ms"] == str(topics.NEVER)
    assert by_topic["md.depth"]["spec"]["config"]["cleanup.policy"] == "compact"


def test_prefix_retention_and_one_replica() -> None:
    day_ms = topics.DAY_MS
    resources = topics_render.kafka_topics("T_x.", "dev", 1, 7 * day_ms)
    by_topic = {r["spec"]["topicName"]: r for r in resources}
    fills = by_topic["T_x.fills"]
    assert fills["metadata"]["name"] == "t-x.fills"
    assert fills["spec"]["config"]["retention.ms"] == str(7 * day_ms)
    assert fills["spec"]["config"]["min.insync.replicas"] == "1"
    assert by_topic["T_x.md.trades"]["spec"]["config"]["retention.ms"] == str(30 * day_ms)


def test_the_printed_yaml_reads_back_as_the_resources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "render", "--cluster", "prod", "--replicas", "3"]) == 0
    printed = _read_yaml(capsys.readouterr().out)
    assert printed == topics_render.kafka_topics("", "prod", 3)


def test_resource_names_are_kubernetes_names() -> None:
    assert topics_render.resource_name("orders.requests.dlq") == "orders.requests.dlq"
    assert topics_render.resource_name("_A__b.") == "a-b"
    with pytest.raises(AssertionError):
        topics_render.resource_name("__")
