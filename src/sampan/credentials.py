"""Whose credentials a process uses, and where they come from.

Every process of the venue runs as a principal of its own (`PRINCIPALS`), whose rights on the
broker are generated from the topic catalog (`sampan.acls`). Its credentials come from one of
three places, in this order:

1. the environment, for a cluster run by someone else: `SAMPAN_KAFKA_USERNAME` and
   `SAMPAN_KAFKA_PASSWORD`, or `SAMPAN_KAFKA_PASSWORD_FILE` naming a file that holds it (TLS and
   SASL settings in `SAMPAN_KAFKA_CONFIG`, the CA in `SAMPAN_KAFKA_CA_FILE`);
2. the files `sampan stack up` wrote when it created a secured local stack
   (`<state>/security/`: the local CA, one password file per principal, a libpq password
   file), so a client talks to the local stack as the stack was created;
3. nowhere: a local stack created without security (PLAINTEXT, trust) gets none.

Guarantees: a secret never comes from, nor goes to, a command line; a password file must not
be readable by group or others. Limits: reading the state folder is a few small file reads per
`settings()` call.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sampan.errors import ConfigError

# The venue's processes, each a principal on the broker (and a role in the database where it
# uses one). `admin` is the operator's: topics, ACLs, reference data, tests; it is a super user.
PRINCIPALS: tuple[str, ...] = (
    "router",
    "matcher",
    "ledger_sink",
    "dropcopy",
    "recon",
    "omd_ingest",
    "ui_bridge",
    "analytics",
    "risk",
    "audit",
    "admin",
)
ADMIN = "admin"
BROKER = "broker"  # the broker's own principal between its listeners; never a client's
SCRAM_MECHANISM = "SCRAM-SHA-512"
SECURITY_DIR = "security"


@dataclass(frozen=True, slots=True)
class LocalSecurity:
    """The files of a secured local stack under `<state>/security/` (mode 700)."""

    root: Path

    @classmethod
    def of(cls, state_dir: Path) -> LocalSecurity:
        return cls(state_dir / SECURITY_DIR)

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def broker_keystore(self) -> Path:
        return self.root / "broker.p12"

    @property
    def pgpass(self) -> Path:
        return self.root / "pgpass"

    def password_file(self, principal: str) -> Path:
        return self.root / "kafka" / f"{principal}.password"

    def present(self) -> bool:
        return self.ca_file.exists()


def read_secret(path: Path, what: str) -> str:
    """A password from a file of its owner's alone; a clear error otherwise."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"cannot read {what} from {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} ({what}) is readable by others: chmod 600 it")
    if not text:
        raise ConfigError(f"{path} ({what}) is empty")
    return text


def _env_password(env: Mapping[str, str]) -> str:
    if env.get("SAMPAN_KAFKA_PASSWORD"):
        return env["SAMPAN_KAFKA_PASSWORD"]
    if env.get("SAMPAN_KAFKA_PASSWORD_FILE"):
        return read_secret(Path(env["SAMPAN_KAFKA_PASSWORD_FILE"]), "SAMPAN_KAFKA_PASSWORD_FILE")
    raise ConfigError(
        "SAMPAN_KAFKA_USERNAME is set but neither SAMPAN_KAFKA_PASSWORD nor "
        "SAMPAN_KAFKA_PASSWORD_FILE is"
    )


def kafka_security(env: Mapping[str, str], state_dir: Path, principal: str) -> dict[str, str]:
    """The librdkafka settings that authenticate `principal` (empty for a PLAINTEXT stack)."""
    if env.get("SAMPAN_KAFKA_USERNAME"):
        config = {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": env["SAMPAN_KAFKA_USERNAME"],
            "sasl.password": _env_password(env),
        }
        if env.get("SAMPAN_KAFKA_CA_FILE"):
            config["ssl.ca.location"] = env["SAMPAN_KAFKA_CA_FILE"]
        return config
    local = LocalSecurity.of(state_dir)
    if not local.present():
        return {}
    assert principal in PRINCIPALS, f"unknown principal {principal!r}"
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.username": principal,
        "sasl.password": read_secret(
            local.password_file(principal), f"the Kafka password of {principal}"
        ),
        "ssl.ca.location": str(local.ca_file),
        "ssl.endpoint.identification.algorithm": "https",
    }


def local_database_url(state_dir: Path, port: int) -> str | None:
    """The libpq URL of a secured local PostgreSQL (TLS verified against the local CA, the
    password from the stack's libpq password file), or None for a trust stack."""
    local = LocalSecurity.of(state_dir)
    if not local.present() or not local.pgpass.exists():
        return None
    return (
        f"postgresql://sampan@127.0.0.1:{port}/sampan?sslmode=verify-full"
        f"&sslrootcert={local.ca_file}&passfile={local.pgpass}"
    )


_current: list[str] = []


def current_principal() -> str:
    """The principal this process runs as: its command's (set by `sampan <command>`), else
    `SAMPAN_PRINCIPAL`, else the operator's."""
    if _current:
        return _current[-1]
    return os.environ.get("SAMPAN_PRINCIPAL") or ADMIN


def run_as(principal: str) -> None:
    """Make `principal` this process's principal (the `sampan` command does, per command)."""
    assert principal in PRINCIPALS, f"unknown principal {principal!r}"
    _current.append(principal)


def done_as(principal: str) -> None:
    assert _current and _current[-1] == principal, "run_as/done_as out of order"
    _current.pop()


def fix_password(
    comp_id: str, state_dir: Path, env: Mapping[str, str], env_name: str | None = None
) -> str | None:
    """The OCG-C Logon password (554) of the FIX session of `comp_id`.

    A firm's side (router, drop copy) takes it from `<env_name>` or the file named in
    `<env_name>_FILE`; on a secured local stack both ends take it from
    `<state>/security/fix/<comp_id>.password` (made on first use, mode 600), so the simulator
    checks what the router and the drop-copy client send. A PLAINTEXT stack has none, and the
    simulator then checks none."""
    if env_name and env.get(env_name):
        return env[env_name]
    if env_name and env.get(f"{env_name}_FILE"):
        return read_secret(Path(env[f"{env_name}_FILE"]), f"{env_name}_FILE")
    local = LocalSecurity.of(state_dir)
    if not local.present():
        return None
    path = local.root / "fix" / f"{comp_id}.password"
    if not path.exists():
        import secrets

        path.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # the other end made it a moment ago
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(18) + "\n")
    return read_secret(path, f"the FIX password of {comp_id}")


def session_password(comp_id: str, env_name: str | None = None) -> str | None:
    """`fix_password` for this process's environment and state folder."""
    state_dir = Path(os.environ.get("SAMPAN_STATE_DIR") or ".state").resolve()
    return fix_password(comp_id, state_dir, os.environ, env_name)
