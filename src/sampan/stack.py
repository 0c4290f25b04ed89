"""The local stack: a real single-node Kafka broker (KRaft) and a real PostgreSQL, self-started.

Kafka's jars are assembled from Maven Central with `deploy/kafka/pom.xml` into
`~/.cache/sampan/kafka-<version>/libs`, outside the repository. Data, logs and pid files live
in the state folder (`SAMPAN_STATE_DIR`, default `./.state`), with one exception: run as root,
PostgreSQL runs as the `postgres` system user, which may not be able to pass through the
folders above the state folder (root's home is mode 700 on Debian, so is every `mktemp -d`).
Then its data goes to a folder of its own under `/var/lib/sampan/` (named from the state
folder's path), recorded in the state folder's `pg.location` so `status`, `down` and `reset`
find it. The permissions of the user's own folders are never changed. `up` is idempotent and waits on
real readiness within bounded timeouts: the broker answers metadata and a transactional
producer initialises; PostgreSQL answers a query. `down` stops only processes whose pid files
`up` wrote. Failures raise `StackError` with the reason and, for a dead process, its log's end.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from sampan import credentials, stack_security
from sampan.config import KAFKA_VERSION, Settings
from sampan.credentials import LocalSecurity
from sampan.errors import StackError
from sampan.streams import profiles

DEPLOY_DIR = Path(
    os.environ.get("SAMPAN_DEPLOY_DIR") or Path(__file__).resolve().parents[2] / "deploy"
)
CACHE_DIR = Path(os.environ.get("SAMPAN_CACHE_DIR") or Path.home() / ".cache" / "sampan")
PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))

MAVEN_TIMEOUT_S = 900
KAFKA_READY_TIMEOUT_S = 90
PG_READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
LOG_TAIL_LINES = 30
PG_OUTSIDE_ROOT = Path(os.environ.get("SAMPAN_PG_OUTSIDE_ROOT") or "/var/lib/sampan")
PG_LOCATION_FILE = "pg.location"


@dataclass(frozen=True, slots=True)
class Paths:
    state: Path

    @property
    def kafka_dir(self) -> Path:
        return self.state / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def kafka_log(self) -> Path:
        return self.kafka_dir / "logs" / "server.log"

    @property
    def kafka_stdout(self) -> Path:
        return self.kafka_dir / "logs" / "stdout.log"

    @property
    def pg_location_file(self) -> Path:
        return self.state / PG_LOCATION_FILE

    @property
    def pg_dir(self) -> Path:
        """`<state>/pg`, unless `up` recorded a folder outside the state folder (see the header)."""
        try:
            recorded = self.pg_location_file.read_text().strip()
        except FileNotFoundError:
            recorded = ""
        return Path(recorded) if recorded else self.state / "pg"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgres.log"


def kafka_home() -> Path:
    return CACHE_DIR / f"kafka-{KAFKA_VERSION}"


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- last {len(text)} lines of {path} ---\n" + "\n".join(text)


def _require(binary: str, hint: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise StackError(f"{binary} not found on PATH: {hint}")
    return found


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); read its state to tell.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if _pid_alive(pid) else None


# ---------------------------------------------------------------------------------------------
# Kafka


def ensure_kafka_jars(progress: bool = True) -> Path:
    """Assemble the broker's classpath from Maven Central once; return its libs folder."""
    libs = kafka_home() / "libs"
    marker = kafka_home() / ".complete"
    if marker.exists():
        return libs
    mvn = _require("mvn", "install Maven (apt-get install maven) to assemble Kafka")
    _require("java", "install Java 17 or newer (apt-get install openjdk-17-jre-headless)")
    staging = kafka_home().with_name(kafka_home().name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    if progress:
        print(f"stack: assembling Kafka {KAFKA_VERSION} from Maven Central into {kafka_home()}")
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(DEPLOY_DIR / "kafka" / "pom.xml"),
        f"-Dkafka.version={KAFKA_VERSION}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging / 'libs'}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise StackError(f"Maven did not assemble Kafka within {MAVEN_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise StackError(
            f"Maven failed to assemble Kafka:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
        )
    if not any((staging / "libs").glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        raise StackError(
            f"Maven finished but kafka_2.13-{KAFKA_VERSION}.jar is missing in {staging}"
        )
    shutil.rmtree(kafka_home(), ignore_errors=True)
    staging.rename(kafka_home())
    marker.write_text(KAFKA_VERSION + "\n")
    return libs


def _java_command(libs: Path, paths: Paths, main: str, *args: str) -> list[str]:
    java = _require("java", "install Java 17 or newer (apt-get install openjdk-17-jre-headless)")
    return [
        java,
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'kafka' / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={paths.kafka_dir / 'logs'}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def _render_server_properties(settings: Settings, paths: Paths) -> Path:
    template = Template((DEPLOY_DIR / "kafka" / "server.properties.template").read_text())
    rendered = template.substitute(
        kafka_port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        log_dirs=str(paths.kafka_data),
    )
    local = LocalSecurity.of(paths.state)
    if local.present():
        rendered = stack_security.secure_properties(rendered, local)
        stack_security.check_properties(rendered)
    target = paths.kafka_dir / "server.properties"
    target.touch(mode=0o600)
    target.chmod(0o600)  # a secured broker's file holds its keystore and SCRAM passwords
    target.write_text(rendered)
    return target


def start_kafka(settings: Settings, paths: Paths) -> str:
    pid = _read_pid(paths.kafka_pid)
    if pid is not None:
        wait_kafka_ready(settings, paths, pid)
        return f"kafka already running (pid {pid}) on 127.0.0.1:{settings.kafka_port}"
    for port in (settings.kafka_port, settings.kafka_controller_port):
        if _port_busy(port):
            raise StackError(
                f"port {port} on 127.0.0.1 is busy but no broker of ours runs: stop what holds it "
                "or set SAMPAN_KAFKA_PORT / SAMPAN_KAFKA_CONTROLLER_PORT"
            )
    libs = ensure_kafka_jars()
    (paths.kafka_dir / "logs").mkdir(parents=True, exist_ok=True)
    properties = _render_server_properties(settings, paths)
    if not (paths.kafka_data / "meta.properties").exists():
        paths.kafka_data.mkdir(parents=True, exist_ok=True)
        cluster_id = _kafka_cluster_id()
        command = _java_command(
            libs,
            paths,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(properties),
        )
        local = LocalSecurity.of(paths.state)
        if local.present():
            command += stack_security.scram_format_args(local)
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
    with paths.kafka_stdout.open("ab") as out:
        process = subprocess.Popen(
            _java_command(libs, paths, "kafka.Kafka", str(properties)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    paths.kafka_pid.write_text(f"{process.pid}\n")
    wait_kafka_ready(settings, paths, process.pid)
    return f"kafka started (pid {process.pid}) on 127.0.0.1:{settings.kafka_port}"


def _kafka_cluster_id() -> str:
    # A UUID in Kafka's base64 form is what StorageTool random-uuid prints; derive it directly
    # rather than start a second JVM.
    # Like Kafka's own Uuid.randomUuid, never one that starts with "-": the storage tool would
    # read it as an option (one start in 64 failed with "expected one argument").
    while True:
        raw = uuid.uuid4().bytes
        cluster_id = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def wait_kafka_ready(settings: Settings, paths: Paths, pid: int) -> None:
    """Wait until the broker answers metadata and a transactional producer initialises."""
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + KAFKA_READY_TIMEOUT_S
    # The probe expects refused connections while the JVM starts; keep librdkafka quiet.
    admin = AdminClient(profiles.admin(settings, log_level=0))
    while True:
        if not _pid_alive(pid):
            raise StackError(
                f"the Kafka broker (pid {pid}) died while starting\n"
                + _tail(paths.kafka_log)
                + "\n"
                + _tail(paths.kafka_stdout, 10)
            )
        try:
            metadata = admin.list_topics(timeout=2)
            if metadata.brokers:
                break
        except KafkaException:
            pass
        if time.monotonic() > deadline:
            raise StackError(
                f"Kafka on {settings.kafka_bootstrap} did not answer metadata within {KAFKA_READY_TIMEOUT_S} s\n"
                + _tail(paths.kafka_log)
            )
        time.sleep(0.5)
    readiness: dict[str, Any] = {"transactional.id": "sampan-stack-readiness", "log_level": 3}
    producer = Producer(profiles.producer(settings, **readiness))
    remaining = max(5.0, deadline - time.monotonic())
    try:
        producer.init_transactions(remaining)
    except KafkaException as error:
        raise StackError(
            f"Kafka answers metadata but a transactional producer could not initialise within {remaining:.0f} s: {error}"
        ) from None


def stop_pid(pid_file: Path, name: str) -> str:
    pid = _read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return f"{name} not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        message = f"{name} (pid {pid}) did not stop within {STOP_TIMEOUT_S} s; killed"
    else:
        message = f"{name} (pid {pid}) stopped"
    pid_file.unlink(missing_ok=True)
    return message


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def _pg_bin(name: str) -> str:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    raise StackError(
        f"PostgreSQL's {name} not found in {', '.join(map(str, PG_BIN_DIRS))}: "
        "install it with `apt-get install postgresql` (make deps does)"
    )


def _as_pg_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; run its tools as the `postgres` system user then."""
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(
            "running as root but no `postgres` system user exists to own the server"
        ) from None
    return ["runuser", "-u", "postgres", "--", *command]


def _chown_for_pg(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)


def start_postgres(settings: Settings, paths: Paths) -> str:
    local = LocalSecurity.of(paths.state)
    pid = _read_pid(paths.pg_data / "postmaster.pid")
    if pid is None and _port_busy(settings.pg_port):
        raise StackError(
            f"port {settings.pg_port} on 127.0.0.1 is busy but no PostgreSQL of ours runs: "
            "stop what holds it or set SAMPAN_PG_PORT"
        )
    if pid is None:
        if not (paths.pg_data / "PG_VERSION").exists():
            paths.pg_dir.mkdir(parents=True, exist_ok=True)
            auth = ["--auth=trust"]
            if local.present():
                pwfile = stack_security.write_pg_password_for_initdb(local, paths.pg_dir)
                auth = stack_security.initdb_args(pwfile)
            _chown_for_pg(paths.pg_dir)
            command = _as_pg_owner(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(paths.pg_data),
                    "--username=sampan",
                    *auth,
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
            (paths.pg_dir / "initdb.password").unlink(missing_ok=True)
            if result.returncode != 0:
                raise StackError(f"initdb failed:\n{result.stdout}{result.stderr}")
            if local.present():
                stack_security.write_pg_hba(paths.pg_data)
                _chown_for_pg(paths.pg_data / "pg_hba.conf")
        options = (
            f"-p {settings.pg_port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories='{paths.pg_dir}' -c max_connections=200 "
            "-c fsync=on -c synchronous_commit=on -c shared_buffers=256MB"
        )
        if local.present():
            cert, key = stack_security.pg_tls_files(local, paths.pg_dir)
            _chown_for_pg(cert.parent)
            options += stack_security.pg_options(cert, key)
        command = _as_pg_owner(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(paths.pg_data),
                "-l",
                str(paths.pg_log),
                "-o",
                options,
                "-w",
                "-t",
                str(PG_READY_TIMEOUT_S),
                "start",
            ]
        )
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PG_READY_TIMEOUT_S + 10
        )
        if result.returncode != 0:
            raise StackError(
                f"PostgreSQL did not start:\n{result.stdout}{result.stderr}\n" + _tail(paths.pg_log)
            )
        pid = _read_pid(paths.pg_data / "postmaster.pid")
        status = f"postgres started (pid {pid}) on 127.0.0.1:{settings.pg_port}"
    else:
        status = f"postgres already running (pid {pid}) on 127.0.0.1:{settings.pg_port}"
    _ensure_database(settings)
    return status


def _ensure_database(settings: Settings) -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo

    admin_url = make_conninfo(settings.database_url, dbname="postgres")
    deadline = time.monotonic() + PG_READY_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = 'sampan'"
                ).fetchone()
                if exists is None:
                    conn.execute("CREATE DATABASE sampan")
            with psycopg.connect(settings.database_url, connect_timeout=3) as conn:
                conn.execute("SELECT 1").fetchone()
            return
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                raise StackError(
                    f"PostgreSQL did not answer a query within {PG_READY_TIMEOUT_S} s: {error}"
                ) from None
            time.sleep(0.5)


def stop_postgres(paths: Paths) -> str:
    pid = _read_pid(paths.pg_data / "postmaster.pid")
    if pid is None:
        return "postgres not running"
    command = _as_pg_owner(
        [
            _pg_bin("pg_ctl"),
            "-D",
            str(paths.pg_data),
            "-m",
            "fast",
            "-w",
            "-t",
            str(STOP_TIMEOUT_S),
            "stop",
        ]
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=STOP_TIMEOUT_S + 10)
    if result.returncode != 0:
        raise StackError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")
    return f"postgres (pid {pid}) stopped"


# ---------------------------------------------------------------------------------------------
# The stack as a whole


def _pg_owner_can_reach(folder: Path) -> bool:
    """Whether the `postgres` user can pass through every folder down to `folder`."""
    result = subprocess.run(
        _as_pg_owner(["test", "-x", str(folder)]), capture_output=True, timeout=30
    )
    return result.returncode == 0


def _outside_pg_dir(state: Path) -> Path:
    digest = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:12]
    return PG_OUTSIDE_ROOT / f"pg-{digest}"


def place_postgres(paths: Paths) -> str | None:
    """As root, make sure the `postgres` user can reach PostgreSQL's folder; move it outside the
    state folder when it cannot (returns a line saying so), without touching the permissions
    of any folder the state folder lies in."""
    if os.geteuid() != 0 or paths.pg_location_file.exists():
        return None
    if (paths.pg_dir / "data" / "PG_VERSION").exists() or _pg_owner_can_reach(paths.state):
        return None
    outside = _outside_pg_dir(paths.state)
    PG_OUTSIDE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not _pg_owner_can_reach(PG_OUTSIDE_ROOT):
        raise StackError(
            f"the postgres user can reach neither {paths.state} nor {PG_OUTSIDE_ROOT}: set "
            "SAMPAN_STATE_DIR (or SAMPAN_PG_OUTSIDE_ROOT) to a folder it can pass through"
        )
    # A folder left by an earlier state folder at this path (deleted by hand, not by `reset`)
    # belongs to a stack that no longer exists: its ledger would not match a new broker's topics.
    stale = outside.exists()
    shutil.rmtree(outside, ignore_errors=True)
    outside.mkdir(mode=0o700)
    paths.pg_location_file.write_text(f"{outside}\n")
    return (
        f"postgres data in {outside}{' (an earlier copy removed)' if stale else ''}: the "
        f"postgres user cannot pass through the folders above {paths.state} "
        f"(recorded in {paths.pg_location_file})"
    )


def up(settings: Settings) -> list[str]:
    paths = Paths(settings.state_dir)
    paths.state.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # The state folder is the stack's own: let the postgres user through it (this is not
        # enough when a folder above it is private, which `place_postgres` handles).
        paths.state.chmod(0o755)
    placed = place_postgres(paths)
    lines = [placed] if placed else []
    created = _create_security(settings, paths)
    if created:
        lines.append(created)
        settings = _with_local_security(settings)
    return [*lines, start_postgres(settings, paths), start_kafka(settings, paths)]


def _create_security(settings: Settings, paths: Paths) -> str | None:
    """On a fresh state folder, create the secured stack's CA, certificates and passwords
    (`stack_security`), unless SAMPAN_STACK_SECURITY=plaintext; a stack created before keeps
    what it was created with."""
    local = LocalSecurity.of(paths.state)
    if local.present():
        return None
    fresh = (
        not (paths.kafka_data / "meta.properties").exists()
        and not (paths.pg_data / "PG_VERSION").exists()
    )
    if not fresh or not stack_security.wanted():
        return None
    shutil.rmtree(local.root, ignore_errors=True)  # a creation cut short before ca.pem
    stack_security.create(local, settings.pg_port)
    return f"security: CA, certificates and passwords created in {local.root} (mode 700)"


def _with_local_security(settings: Settings) -> Settings:
    """`settings` as the operator's client of the stack just secured."""
    from dataclasses import replace

    url = os.environ.get("SAMPAN_DATABASE_URL") or credentials.local_database_url(
        settings.state_dir, settings.pg_port
    )
    return replace(
        settings,
        principal=credentials.ADMIN,
        kafka_security=credentials.kafka_security(
            os.environ, settings.state_dir, credentials.ADMIN
        ),
        database_url=url or settings.database_url,
    )


def down(settings: Settings) -> list[str]:
    paths = Paths(settings.state_dir)
    return [stop_pid(paths.kafka_pid, "kafka"), stop_postgres(paths)]


def status(settings: Settings) -> list[str]:
    paths = Paths(settings.state_dir)
    kafka_pid = _read_pid(paths.kafka_pid)
    pg_pid = _read_pid(paths.pg_data / "postmaster.pid")
    secured = LocalSecurity.of(paths.state).present()
    lines = [
        f"kafka     {'running, pid ' + str(kafka_pid) if kafka_pid else 'stopped'}"
        f"  127.0.0.1:{settings.kafka_port}  jars {kafka_home()}",
        f"postgres  {'running, pid ' + str(pg_pid) if pg_pid else 'stopped'}"
        f"  127.0.0.1:{settings.pg_port}  data {paths.pg_data}",
        f"security  {'SASL_SSL (SCRAM-SHA-512), ACLs; PostgreSQL hostssl, SCRAM' if secured else 'none (PLAINTEXT, trust)'}"
        f"  {LocalSecurity.of(paths.state).root if secured else ''}".rstrip(),
    ]
    return lines


def is_up(settings: Settings) -> bool:
    paths = Paths(settings.state_dir)
    return (
        _read_pid(paths.kafka_pid) is not None
        and _read_pid(paths.pg_data / "postmaster.pid") is not None
    )


def reset(settings: Settings) -> list[str]:
    lines = down(settings)
    paths = Paths(settings.state_dir)
    if paths.pg_location_file.exists():
        shutil.rmtree(paths.pg_dir, ignore_errors=True)
        lines.append(f"removed {paths.pg_dir}")
    shutil.rmtree(settings.state_dir, ignore_errors=True)
    lines.append(f"removed {settings.state_dir}")
    return lines
