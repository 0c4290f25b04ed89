"""Connection settings, read from the environment with documented defaults.

Every process and test takes its broker and database from here, so the same code runs against
the local stack (`sampan stack up`) or an existing Kafka cluster and PostgreSQL server.

| variable | default | meaning |
|---|---|---|
| SAMPAN_KAFKA_BOOTSTRAP | 127.0.0.1:19092 | Kafka bootstrap servers |
| SAMPAN_KAFKA_CONFIG | (empty) | extra librdkafka settings, `key=value` separated by `;` (SASL/TLS) |
| SAMPAN_DATABASE_URL | postgresql://sampan@127.0.0.1:15432/sampan | PostgreSQL URL (libpq form) |
| SAMPAN_TOPIC_PREFIX | (empty) | prefix for every topic name, to share a cluster between venues |
| SAMPAN_REPLICATION_FACTOR | 1 | replication factor for `topics apply` on a real cluster |
| SAMPAN_AUDIT_RETENTION_DAYS | (never) | retention of the audit topics (`topics.AUDIT_TOPICS`) |
| SAMPAN_KAFKA_USERNAME | (empty) | this process's SASL user on a real cluster (SCRAM-SHA-512, SASL_SSL) |
| SAMPAN_KAFKA_PASSWORD / SAMPAN_KAFKA_PASSWORD_FILE | (empty) | its password, or a file (mode 600) holding it |
| SAMPAN_KAFKA_CA_FILE | (system's) | the CA that signed the brokers' certificates |
| SAMPAN_STATE_DIR | ./.state | where the local stack keeps data, logs and pids |
| SAMPAN_KAFKA_PORT / SAMPAN_KAFKA_CONTROLLER_PORT | 19092 / 19093 | local broker ports |
| SAMPAN_PG_PORT | 15432 | local PostgreSQL port |

Security follows the stack a client talks to (`sampan.credentials`): a local stack that
`sampan stack up` created secured leaves its CA and each principal's password in the state
folder, and every client built from these settings authenticates from them; the environment
variables above take precedence (a real cluster); a PLAINTEXT stack gets no security settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sampan import credentials
from sampan.errors import ConfigError

KAFKA_VERSION = "4.1.1"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap: str
    kafka_extra: dict[str, str]
    database_url: str
    topic_prefix: str
    replication_factor: int
    state_dir: Path
    kafka_port: int
    kafka_controller_port: int
    pg_port: int
    principal: str = credentials.ADMIN
    # TLS and SASL settings with this principal's password: never printed.
    kafka_security: dict[str, str] = field(default_factory=dict, repr=False)

    def kafka(self, **overrides: Any) -> dict[str, Any]:
        """Base librdkafka settings: the bootstrap servers, security, extras, then the call
        site's."""
        config: dict[str, Any] = {"bootstrap.servers": self.kafka_bootstrap}
        config.update(self.kafka_security)
        config.update(self.kafka_extra)
        config.update(overrides)
        return config

    def topic(self, name: str) -> str:
        return self.topic_prefix + name


def _parse_extra(raw: str) -> dict[str, str]:
    extra: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"SAMPAN_KAFKA_CONFIG item {item!r} is not key=value")
        extra[key.strip()] = value.strip()
    return extra


def settings(principal: str | None = None) -> Settings:
    """Read the settings from the environment now (cheap; not cached, so tests can change it),
    for `principal` (default: the one this process runs as, `credentials.current_principal`)."""
    kafka_port = _int_env("SAMPAN_KAFKA_PORT", 19092)
    pg_port = _int_env("SAMPAN_PG_PORT", 15432)
    state_dir = Path(os.environ.get("SAMPAN_STATE_DIR") or ".state").resolve()
    who = principal or credentials.current_principal()
    return Settings(
        kafka_bootstrap=os.environ.get("SAMPAN_KAFKA_BOOTSTRAP") or f"127.0.0.1:{kafka_port}",
        kafka_extra=_parse_extra(os.environ.get("SAMPAN_KAFKA_CONFIG", "")),
        database_url=os.environ.get("SAMPAN_DATABASE_URL")
        or credentials.local_database_url(state_dir, pg_port)
        or f"postgresql://sampan@127.0.0.1:{pg_port}/sampan",
        topic_prefix=os.environ.get("SAMPAN_TOPIC_PREFIX", ""),
        replication_factor=_int_env("SAMPAN_REPLICATION_FACTOR", 1),
        state_dir=state_dir,
        kafka_port=kafka_port,
        kafka_controller_port=_int_env("SAMPAN_KAFKA_CONTROLLER_PORT", kafka_port + 1),
        pg_port=pg_port,
        principal=who,
        kafka_security=credentials.kafka_security(os.environ, state_dir, who),
    )
