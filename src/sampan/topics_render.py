"""The topic catalog as Strimzi `KafkaTopic` resources, for a Kubernetes cluster whose Kafka is
run by the Strimzi operator (`sampan topics render`).

Guarantees: one resource per catalog topic (dead-letter topics included), with the catalog's
partitions and exactly the configs `topics apply` sets and checks (`Topic.configs`), the
deployment's replication factor, and the topic's real name in `spec.topicName` (a Kubernetes
name cannot hold every Kafka name: it is lowercased, and what else it cannot hold becomes `-`).
The text is YAML whose every scalar is written as JSON (a subset of YAML), so no value changes
type on the way (`"-1"` stays a string, as Strimzi passes it to Kafka).

Limits: KafkaUser resources (the ACLs) are not rendered yet; Strimzi's topic operator, like
`topics apply`, is then the only creator of topics, so brokers keep
`auto.create.topics.enable=false`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sampan import topics

STRIMZI_API_VERSION = "kafka.strimzi.io/v1beta2"
CLUSTER_LABEL = "strimzi.io/cluster"
NAME_LENGTH_MAX = 253  # a Kubernetes object name is a DNS subdomain
_NOT_IN_NAME = re.compile(r"[^a-z0-9.-]+")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def resource_name(topic_name: str) -> str:
    """A valid Kubernetes object name for `topic_name` (lowercase, `[a-z0-9.-]`, alphanumeric
    at both ends)."""
    name = _NOT_IN_NAME.sub("-", topic_name.lower()).strip(".-")[:NAME_LENGTH_MAX].strip(".-")
    assert name, f"topic {topic_name!r} leaves nothing for a resource name"
    return name


def kafka_topics(
    prefix: str, cluster: str, replicas: int, audit_retention_ms: int = topics.NEVER
) -> list[dict[str, Any]]:
    """One `KafkaTopic` resource per catalog topic, in catalog order."""
    assert replicas >= 1, replicas
    resources = []
    names = []
    for topic in topics.ALL:
        name = prefix + topic.name
        names.append(resource_name(name))
        resources.append(
            {
                "apiVersion": STRIMZI_API_VERSION,
                "kind": "KafkaTopic",
                "metadata": {
                    "name": names[-1],
                    "labels": {CLUSTER_LABEL: cluster},
                    "annotations": {
                        "sampan/key": topic.key,
                        "sampan/value": topic.value,
                        "sampan/writers": ", ".join(topic.writers),
                        "sampan/readers": ", ".join(topic.readers),
                    },
                },
                "spec": {
                    "topicName": name,
                    "partitions": topic.partitions,
                    "replicas": replicas,
                    "config": topic.configs(replicas, audit_retention_ms),
                },
            }
        )
    assert len(set(names)) == len(names), f"two topics share a resource name: {names}"
    return resources


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else json.dumps(key)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{_key(key)}:")
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{pad}{_key(key)}: {json.dumps(item)}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            nested = _lines(item, indent + 2)
            out.append(f"{pad}- {nested[0].lstrip()}")
            out.extend(nested[1:])
        return out
    return [f"{pad}{json.dumps(value)}"]


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """Documents as one YAML stream (`---` between them)."""
    return "".join("---\n" + "\n".join(_lines(doc, 0)) + "\n" for doc in documents)
