"""The agent runtime every Kafka→Kafka process of sampan runs on.

An agent consumes a bounded batch, hands each decoded record to a pure handler, produces the
handler's outputs and commits the input offsets in one Kafka transaction. Records that cannot be
decoded or handled go to the source topic's dead-letter topic in the same transaction.
"""

from sampan.streams.runtime import Agent, AgentConfig, InRecord, Output, run_agent

__all__ = ["Agent", "AgentConfig", "InRecord", "Output", "run_agent"]
