"""A secured local stack: its CA, certificates and passwords, and the broker's and PostgreSQL's
settings that use them.

`sampan stack up` on a fresh state folder with `SAMPAN_STACK_SECURITY=on` creates, once,
`<state>/security/` (mode 700): a local CA (`ca.pem`, its key `ca.key`), one server certificate
for 127.0.0.1 and localhost signed by it (`server.pem`, `server.key`, and the broker's PKCS#12
copy `broker.p12`), a random password for every principal (`kafka/<principal>.password`) and the
broker itself, and a libpq password file (`pgpass`). Every secret file is mode 600. The broker then listens on SASL_SSL only
(SCRAM-SHA-512) with the controller on mutual TLS, authorizes with KRaft's StandardAuthorizer
and `allow.everyone.if.no.acl.found=false`; PostgreSQL takes `hostssl` SCRAM connections only.

A stack created before, without these files, stays as it was created (PLAINTEXT and trust):
clients follow the state folder (`sampan.credentials`), so they talk to each stack as it is.
`SAMPAN_STACK_SECURITY=plaintext` (the default until every test has run on a secured stack)
creates a new stack without security.

Limits: the CA and certificates last ten years and are not rotated; the CA key stays in the
state folder (a local stack's, not a production CA).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

from sampan.credentials import (
    ADMIN,
    BROKER,
    PRINCIPALS,
    SCRAM_MECHANISM,
    LocalSecurity,
    read_secret,
)
from sampan.errors import StackError

CERT_DAYS = 3650
BROKER_CN = "sampan-broker"
KEYSTORE_PASSWORD_FILE = "broker-keystore.password"  # noqa: S105 - a file name
PG_PASSWORD_FILE = "pg/sampan.password"  # noqa: S105 - a file name
OPENSSL_TIMEOUT_S = 60
# What `stack up` creates on a fresh state folder unless SAMPAN_STACK_SECURITY says otherwise.
DEFAULT = "plaintext"


def wanted() -> bool:
    """Whether a stack created now is secured or PLAINTEXT (`DEFAULT` unless the env says)."""
    value = os.environ.get("SAMPAN_STACK_SECURITY", DEFAULT).strip().lower()
    if value not in {"on", "plaintext"}:
        raise StackError(
            f"SAMPAN_STACK_SECURITY={value!r}: 'on' or 'plaintext' (default {DEFAULT!r})"
        )
    return value == "on"


def _secret_file(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StackError("openssl not found on PATH: install it (apt-get install openssl)")
    result = subprocess.run(
        [openssl, *args], capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S
    )
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed:\n{result.stdout}{result.stderr}")


def make_certificates(local: LocalSecurity) -> None:
    """The local CA and a certificate for 127.0.0.1 and localhost signed by it, in `local`."""
    root = local.root
    _openssl("genrsa", "-out", str(local.ca_key), "2048")
    _openssl(
        "req", "-x509", "-new", "-key", str(local.ca_key), "-sha256", "-days", str(CERT_DAYS),
        "-subj", "/CN=sampan local CA", "-out", str(local.ca_file),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl("genrsa", "-out", str(local.server_key), "2048")
    request = root / "server.csr"
    _openssl(
        "req", "-new", "-key", str(local.server_key), "-subj", f"/CN={BROKER_CN}",
        "-out", str(request),
    )  # fmt: skip
    extensions = root / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(local.ca_file), "-CAkey",
        str(local.ca_key), "-CAcreateserial", "-days", str(CERT_DAYS), "-sha256",
        "-extfile", str(extensions), "-out", str(local.server_cert),
    )  # fmt: skip
    keystore_password = secrets.token_urlsafe(24)
    _secret_file(root / KEYSTORE_PASSWORD_FILE, keystore_password)
    _openssl(
        "pkcs12", "-export", "-in", str(local.server_cert), "-inkey", str(local.server_key),
        "-certfile", str(local.ca_file), "-name", BROKER_CN, "-out", str(local.broker_keystore),
        "-passout", f"file:{root / KEYSTORE_PASSWORD_FILE}",
    )  # fmt: skip
    for leftover in (request, extensions, root / "ca.srl"):
        leftover.unlink(missing_ok=True)
    for path in (local.ca_key, local.server_key, local.broker_keystore):
        path.chmod(0o600)
    for path in (local.ca_file, local.server_cert):
        path.chmod(0o644)


def create(local: LocalSecurity, pg_port: int) -> None:
    """Create the CA, the certificates and every password, once (see the module header)."""
    assert not local.present(), "security files are created once"
    local.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    local.root.chmod(0o700)
    staging_marker = local.root / "creating"
    staging_marker.touch()
    for principal in (*PRINCIPALS, BROKER):
        _secret_file(local.password_file(principal), secrets.token_urlsafe(24))
    pg_password = secrets.token_urlsafe(24)
    _secret_file(local.root / PG_PASSWORD_FILE, pg_password)
    _secret_file(local.pgpass, f"127.0.0.1:{pg_port}:*:sampan:{pg_password}")
    make_certificates(local)  # ca.pem last: its presence says the stack is secured
    staging_marker.unlink()


def password(local: LocalSecurity, principal: str) -> str:
    return read_secret(local.password_file(principal), f"the Kafka password of {principal}")


# ---------------------------------------------------------------------------------------------
# Kafka


def scram_format_args(local: LocalSecurity) -> list[str]:
    """The storage formatter's arguments that create every principal's SCRAM credentials with
    the cluster (the broker's own must exist before it can talk to itself)."""
    args: list[str] = []
    for principal in (*PRINCIPALS, BROKER):
        secret = password(local, principal)
        args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={principal},password={secret}]"]
    return args


def secure_properties(text: str, local: LocalSecurity) -> str:
    """The rendered broker properties with the client listener on SASL_SSL, the controller's on
    mutual TLS, and the authorizer on; secrets are read from the state folder."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(("listeners=", "advertised.listeners=")):
            lines.append(line.replace("PLAINTEXT://", "SASL_SSL://"))
        elif line.startswith("listener.security.protocol.map="):
            lines.append("listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL")
        elif line.startswith("inter.broker.listener.name="):
            lines.append("inter.broker.listener.name=SASL_SSL")
        else:
            lines.append(line)
    keystore_password = read_secret(local.root / KEYSTORE_PASSWORD_FILE, "the keystore password")
    broker_password = password(local, BROKER)
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER}" password="{broker_password}";'
    )
    super_users = f"User:{BROKER};User:{ADMIN};User:CN={BROKER_CN}"
    lines += [
        "",
        "# Security (sampan stack up: a secured stack). Clients: SASL_SSL with SCRAM-SHA-512;",
        "# the controller listener: TLS with client certificates from the local CA only.",
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.location={local.broker_keystore}",
        f"ssl.keystore.password={keystore_password}",
        f"ssl.key.password={keystore_password}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={local.ca_file}",
        "ssl.endpoint.identification.algorithm=https",
        "listener.name.controller.ssl.client.auth=required",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        f"super.users={super_users}",
    ]
    return "\n".join(lines) + "\n"


def check_properties(text: str) -> None:
    """A secured broker's properties must not keep a PLAINTEXT listener."""
    for line in text.splitlines():
        if re.match(r"(advertised\.)?listeners=.*PLAINTEXT://", line):
            raise StackError(f"secured broker still has a PLAINTEXT listener: {line}")


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def initdb_args(pwfile: Path) -> list[str]:
    return ["--auth=scram-sha-256", f"--pwfile={pwfile}"]


def write_pg_password_for_initdb(local: LocalSecurity, pg_dir: Path) -> Path:
    """initdb reads the owner's password from a file the postgres user can read: a copy in its
    own folder, removed once initdb has run (`forget_initdb_password`)."""
    target = pg_dir / "initdb.password"
    _secret_file(target, read_secret(local.root / PG_PASSWORD_FILE, "the database password"))
    return target


def pg_tls_files(local: LocalSecurity, pg_dir: Path) -> tuple[Path, Path]:
    """The server certificate and key where the postgres user can read them (it refuses a key
    that others can read); copied from the state folder on every start."""
    tls = pg_dir / "tls"
    tls.mkdir(mode=0o700, exist_ok=True)
    cert, key = tls / "server.pem", tls / "server.key"
    shutil.copyfile(local.server_cert, cert)
    shutil.copyfile(local.server_key, key)
    key.chmod(0o600)
    return cert, key


def pg_options(cert: Path, key: Path) -> str:
    return (
        f" -c ssl=on -c ssl_cert_file='{cert}' -c ssl_key_file='{key}'"
        " -c password_encryption=scram-sha-256 -c ssl_min_protocol_version=TLSv1.2"
    )


def write_pg_hba(data: Path) -> None:
    """TLS connections with SCRAM passwords from loopback only: no socket, no plain TCP."""
    (data / "pg_hba.conf").write_text(
        "# sampan stack up (a secured stack): TLS and SCRAM only, from 127.0.0.1.\n"
        "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
        "hostssl all       all   127.0.0.1/32  scram-sha-256\n"
    )
