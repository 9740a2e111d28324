"""Real servers for the integration tests: Apache Kafka, and two MongoDB
wire-protocol servers, FerretDB (SQLite backend) and mongo-java-server
(in memory).

All run as child processes on free loopback ports, with their data and logs
in a directory the caller gives (pytest's tmp dirs). Nothing is shared with
the machine: no fixed ports, no system services, no Docker.

    kafka = KafkaServer(); kafka.start(tmpdir)    # .bootstrap "127.0.0.1:PORT"
    kafka.create_topic("notifications", partitions=3)
    mongo = FerretDB(); mongo.start(tmpdir)       # .uri "mongodb://127.0.0.1:PORT/"
    mem = MongoJavaServer(); mem.start(tmpdir)    # the same, in memory
    produce(kafka.bootstrap, "notifications", [{"id": "n1", "userId": "u1", ...}])
    kafka.stop(); mongo.stop()

The servers themselves come from tests/servers/fetch.sh (Kafka's jars from
Maven Central, FerretDB built from its Go module, mongo-java-server's jars
from Maven Central with a main built by Maven) into a cache directory,
$TEST_CACHE_DIR or .cache at the top of the repository; the first start in a
process runs that script, which returns at once when the cache is complete.

Every child process is stopped when its object is stopped, at interpreter
exit (atexit), and, through PR_SET_PDEATHSIG, when the test process dies
without running atexit (SIGKILL, a crash).
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable, Sequence

REPO = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = REPO / "tests" / "servers" / "fetch.sh"
KAFKA_VERSION = "4.1.1"
FERRETDB_VERSION = "1.24.2"
MONGO_JAVA_SERVER_VERSION = "1.47.0"

log = logging.getLogger("servers")


def cache_dir() -> Path:
    """Where fetch.sh puts the servers: $TEST_CACHE_DIR or REPO/.cache."""
    return Path(os.environ.get("TEST_CACHE_DIR") or (REPO / ".cache")).resolve()


def kafka_jars_dir() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def ferretdb_binary() -> Path:
    return cache_dir() / f"ferretdb-{FERRETDB_VERSION}"


def mongo_java_server_jars_dir() -> Path:
    return cache_dir() / f"mongo-java-server-{MONGO_JAVA_SERVER_VERSION}"


# --------------------------------------------------------------------------
# Preparing the servers

_fetch_lock = threading.Lock()
_fetched: set[str] = set()


def ensure_fetched(what: str = "all") -> None:
    """Run tests/servers/fetch.sh WHAT once per process.

    The script skips whatever is already complete in the cache (it takes
    ~20 ms then), and rebuilds a server whose inputs changed.
    """
    with _fetch_lock:
        if what in _fetched or "all" in _fetched:
            return
        t0 = time.monotonic()
        proc = subprocess.run(
            ["sh", str(FETCH_SCRIPT), what],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{FETCH_SCRIPT} {what} failed (exit {proc.returncode}):\n{proc.stdout}"
            )
        log.info("fetch.sh %s: %.1f s\n%s", what, time.monotonic() - t0, proc.stdout)
        _fetched.add(what)


# --------------------------------------------------------------------------
# Ports

_ports_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1, never the same twice in this process.

    Chosen below the kernel's ephemeral range (32768-60999 here), so the
    outgoing connections of the tests and servers cannot take it between this
    check and the server's bind.
    """
    with _ports_lock:
        for _ in range(1000):
            port = random.randrange(20000, 32000)
            if port in _ports_handed_out or not _port_is_free(port):
                continue
            _ports_handed_out.add(port)
            return port
    raise RuntimeError("no free TCP port found on 127.0.0.1")


def wait_http_ok(url: str, timeout: float, still=lambda: True, why=lambda: "") -> None:
    """Until URL answers 200; fails with why() once timeout passes or
    still() is false (the process serving it is gone)."""
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:  # refused, or an HTTP error status
            pass
        if not still() or time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer 200: {why()}")
        time.sleep(0.2)


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    """Wait until 127.0.0.1:PORT accepts a connection; False on timeout or if
    PROC exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# --------------------------------------------------------------------------
# Child processes

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. The signal fires when the
    # thread that forked exits, so only children of the main thread use it
    # (see spawn()).
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def spawn(
    cmd: Sequence[str],
    log_path: Path,
    *,
    cwd: Path | str | None = None,
    env: dict | None = None,
    append: bool = False,
) -> subprocess.Popen:
    """Start CMD with stdout and stderr to LOG_PATH, in its own process group,
    tracked so that it is killed at exit at the latest."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab" if append else "wb") as logf:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent
            if threading.current_thread() is threading.main_thread()
            else None,
        )
    with _live_lock:
        _live.add(proc)
    return proc


def terminate(proc: subprocess.Popen, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
    """Send SIG (SIGTERM), wait up to TIMEOUT seconds, then SIGKILL the whole
    process group. Returns the exit code (negative: killed by that signal)."""
    try:
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not exit %.0f s after signal %d: SIGKILL",
                            proc.pid, timeout, sig)
                # Not reaped yet, so its pid (= its process group) is still ours.
                _killpg(proc)
                proc.wait(timeout=30)
        return proc.returncode
    finally:
        with _live_lock:
            _live.discard(proc)


def _killpg(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _killpg(proc)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def tail(path: Path | str, lines: int = 60) -> str:
    """The last LINES lines of a log file (or a note that it is missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(data.splitlines()[-lines:])


# --------------------------------------------------------------------------
# Kafka

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c{1})%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


def _client_logger() -> logging.Logger:
    # librdkafka's own log lines (connection refused while a broker starts...)
    # go to Python logging, which pytest shows for failed tests only.
    return logging.getLogger("servers.rdkafka")


# JVM options that shorten the broker's start: client-compiler JIT only and
# the serial collector (measured here: 3.3-3.4 s instead of 3.9-6.2 s on a
# quiet machine, 6-9 s instead of 15-19 s on a busy one). Fine for functional
# tests; a benchmark should pass jvm_opts=() for the JVM's defaults.
FAST_START_JVM_OPTS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


def wait_started(server, deadline: float) -> None:
    """Until SERVER's port accepts connections; raises server._fail() if the
    process exits first or the deadline passes."""
    if not wait_port(server.port, max(0.0, deadline - time.monotonic()), server.proc):
        if server.proc.poll() is not None:
            raise server._fail(f"exited with code {server.proc.returncode} while starting")
        raise server._fail("did not open its port in time")


def poll_until(server, deadline: float, attempt, what: str) -> None:
    """Calls ATTEMPT until it returns something true; an exception counts as
    not yet. Raises server._fail() if the process exits or the deadline passes."""
    last = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise server._fail(f"exited with code {server.proc.returncode} while starting")
        try:
            if attempt():
                return
        except Exception as e:
            last = e
        time.sleep(0.1)
    raise server._fail(f"{what} in time (last error: {last})")


class KafkaServer:
    """A single-node Apache Kafka (KRaft: broker and controller in one JVM).

    heap              -Xmx/-Xms of the broker
    extra_properties  added to / overriding server.properties
    jvm_opts          extra JVM options (default FAST_START_JVM_OPTS, or
                      $KAFKA_TEST_JVM_OPTS split on spaces when set)
    """

    def __init__(self, heap: str = "512m", extra_properties: dict | None = None,
                 jvm_opts: Sequence[str] | None = None):
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        if jvm_opts is None:
            env = os.environ.get("KAFKA_TEST_JVM_OPTS")
            jvm_opts = env.split() if env is not None else FAST_START_JVM_OPTS
        self.jvm_opts = list(jvm_opts)
        self.port: int | None = None
        self.controller_port: int | None = None
        self.dir: Path | None = None
        self.log_path: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._admin = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise RuntimeError("KafkaServer not started")
        return f"127.0.0.1:{self.port}"

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-Djava.awt.headless=true",
            *self.jvm_opts,
            "-cp",
            f"{kafka_jars_dir()}/*",
            *args,
        ]

    def start(self, tmpdir: Path | str, timeout: float = 60.0) -> "KafkaServer":
        ensure_fetched("kafka")
        t0 = time.monotonic()
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.controller_port = free_port()
        data = self.dir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # As in production (and compose): a topic exists because someone
            # made it, so the gateway's own creation of its dead-letter
            # topic is what the tests see.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            # 50 by default: fewer makes the first consumer group join faster.
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update({k: str(v) for k, v in self.extra_properties.items()})
        (self.dir / "server.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in props.items())
        )
        (self.dir / "log4j2.properties").write_text(_LOG4J2)

        template = None
        if not self.extra_properties:  # they might change what is formatted
            try:
                template = self._format_template()
            except OSError as e:  # a read-only cache, say
                log.warning("no Kafka format template (%s): formatting directly", e)
        if template is not None:
            shutil.copytree(template, data)
        else:
            self._format(data)
        t_format = time.monotonic() - t0

        self.log_path = self.dir / "kafka.log"
        self.proc = spawn(
            self._java(f"-Xmx{self.heap}", f"-Xms{self.heap}", "kafka.Kafka",
                       str(self.dir / "server.properties")),
            self.log_path,
            cwd=self.dir,
        )
        try:
            self._wait_ready(t0 + timeout)
        except BaseException:
            self.stop()
            raise
        log.info("kafka %s up on %s in %.1f s (storage ready after %.1f s), dir %s",
                 KAFKA_VERSION, self.bootstrap, time.monotonic() - t0, t_format, self.dir)
        return self

    def _format(self, data: Path) -> None:
        """kafka.tools.StorageTool format, into DATA (log.dirs)."""
        # A cluster id is 16 random bytes in URL-safe base64 (what
        # `StorageTool random-uuid` prints), not starting with '-'.
        while True:
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            if not cluster_id.startswith("-"):
                break
        props = (self.dir / "server.properties").read_text()
        props = re.sub(r"(?m)^log\.dirs=.*$", lambda _: f"log.dirs={data}", props)
        props_path = data.parent / f"{data.name}.format.properties"
        props_path.write_text(props)
        fmt = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                       "-c", str(props_path)),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=120,
        )
        props_path.unlink()
        (self.dir / "format.log").write_text(fmt.stdout)
        if fmt.returncode != 0:
            raise RuntimeError(
                f"kafka storage format failed (exit {fmt.returncode}):\n"
                + "\n".join(fmt.stdout.splitlines()[-40:])
            )

    def _format_template(self) -> Path:
        """A formatted, empty log directory, made once per Kafka cache.

        What `StorageTool format` writes (meta.properties: cluster id, node id
        1, a directory id; bootstrap.checkpoint: the metadata version) does
        not depend on the ports or paths, so every broker started with the
        default properties copies it and saves a JVM start (1.5 s idle, 5+ s
        on a busy machine). Each broker is alone in its cluster, so sharing a
        cluster id is harmless.
        """
        template = kafka_jars_dir() / ".format-template"
        if (template / "meta.properties").is_file():
            return template
        tmp = kafka_jars_dir() / f".format-template.tmp.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        self._format(tmp)
        try:
            os.rename(tmp, template)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
            if not (template / "meta.properties").is_file():
                raise
        return template

    def _fail(self, why: str) -> RuntimeError:
        return RuntimeError(
            f"Kafka on {self.bootstrap} {why}; last lines of {self.log_path}:\n{tail(self.log_path)}"
        )

    def _wait_ready(self, deadline: float) -> None:
        # First the port (quietly), then a real metadata request.
        wait_started(self, deadline)
        # KafkaException while the broker is fenced.
        poll_until(self, deadline, lambda: self.admin().list_topics(timeout=2).brokers,
                   "did not answer a metadata request")

        # Have the group coordinator ready (this creates __consumer_offsets),
        # so the first consumer group of a test does not wait for it.
        def coordinator():
            self.admin().describe_consumer_groups(
                ["servers-warm-up"], request_timeout=5)["servers-warm-up"].result()
            return True
        poll_until(self, deadline, coordinator, "has no group coordinator")

    def admin(self):
        """A confluent_kafka AdminClient for this broker (created once)."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient({
                "bootstrap.servers": self.bootstrap,
                "logger": _client_logger(),
            })
        return self._admin

    def create_topic(self, name: str, partitions: int = 3, timeout: float = 30.0,
                     config: dict | None = None) -> str:
        """Create topic NAME and wait until every partition has a leader."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        deadline = time.monotonic() + timeout
        futures = self.admin().create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1,
                      config={str(k): str(v) for k, v in (config or {}).items()})],
            operation_timeout=timeout, request_timeout=timeout,
        )
        try:
            futures[name].result(timeout=timeout)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        while True:
            md = self.admin().list_topics(topic=name, timeout=5)
            t = md.topics.get(name)
            if (t is not None and t.error is None and len(t.partitions) == partitions
                    and all(p.leader >= 0 and p.error is None for p in t.partitions.values())):
                return name
            if t is not None and t.error is None and t.partitions and len(t.partitions) != partitions:
                raise RuntimeError(
                    f"topic {name} exists with {len(t.partitions)} partitions, wanted {partitions}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {name} not ready after {timeout} s: {t and t.error}")
            time.sleep(0.05)

    def restart(self, timeout: float = 60.0) -> "KafkaServer":
        """Starts the stopped or killed broker again on the same ports and log
        directory: what it had written is still there."""
        self._admin = None
        self.proc = spawn(
            self._java(f"-Xmx{self.heap}", f"-Xms{self.heap}", "kafka.Kafka",
                       str(self.dir / "server.properties")),
            self.log_path, cwd=self.dir, append=True)
        self._wait_ready(time.monotonic() + timeout)
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after TIMEOUT seconds. Returns the exit code."""
        self._admin = None
        if self.proc is None:
            return None
        code = terminate(self.proc, timeout)
        log.info("kafka on port %s stopped (exit %s)", self.port, code)
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# --------------------------------------------------------------------------
# MongoDB-wire servers: FerretDB and mongo-java-server

class MongoWireServer:
    """What the MongoDB-wire stand-ins share: a process on a loopback port
    that answers ping when ready. A subclass names itself (NAME, VERSION,
    FETCH: its fetch.sh target) and gives its command line (_command)."""

    NAME = VERSION = FETCH = ""

    def __init__(self):
        self.port: int | None = None
        self.dir: Path | None = None
        self.log_path: Path | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.NAME} not started")
        return f"mongodb://127.0.0.1:{self.port}/"

    def client(self, **kwargs):
        """A new pymongo.MongoClient on this server (close it when done)."""
        import pymongo

        kwargs.setdefault("serverSelectionTimeoutMS", 5000)
        return pymongo.MongoClient(self.uri, **kwargs)

    def _command(self) -> list[str]:
        raise NotImplementedError

    def start(self, tmpdir: Path | str, timeout: float = 30.0, port: int | None = None):
        """Starts on PORT, or a free one."""
        ensure_fetched(self.FETCH)
        t0 = time.monotonic()
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.dir / f"{self.FETCH}.log"
        self.proc = spawn(self._command(), self.log_path, cwd=self.dir)
        try:
            self._wait_ready(t0 + timeout)
        except BaseException:
            self.stop()
            raise
        log.info("%s %s up on %s in %.1f s", self.NAME, self.VERSION, self.uri,
                 time.monotonic() - t0)
        return self

    def _fail(self, why: str) -> RuntimeError:
        return RuntimeError(
            f"{self.NAME} on port {self.port} {why}; last lines of {self.log_path}:\n"
            f"{tail(self.log_path)}"
        )

    def _wait_ready(self, deadline: float) -> None:
        wait_started(self, deadline)

        def ping():
            with self.client(serverSelectionTimeoutMS=1000) as c:
                c.admin.command("ping")
            return True
        poll_until(self, deadline, ping, "did not answer ping")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, SIGKILL after TIMEOUT seconds. Returns the exit code."""
        if self.proc is None:
            return None
        code = terminate(self.proc, timeout)
        log.info("%s on port %s stopped (exit %s)", self.NAME, self.port, code)
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class FerretDB(MongoWireServer):
    """FerretDB (MongoDB wire protocol) with its SQLite backend: its data
    stays in TMPDIR/data, so a restart on the same directory keeps it."""

    NAME, VERSION, FETCH = "FerretDB", FERRETDB_VERSION, "ferretdb"

    def _command(self) -> list[str]:
        return [str(ferretdb_binary()), "--listen", f"127.0.0.1:{self.port}",
                "--dir", str(self.dir / "data")]


class MongoJavaServer(MongoWireServer):
    """mongo-java-server (MongoDB wire protocol) with its memory backend: the
    data lives as long as the process, nothing is written to TMPDIR but the
    log. It presents itself as MongoDB 5.0 with wire version 13 (see
    tests/servers/mongo-java-server), so both libmongoc and pymongo 4 talk to
    it. The JVM is up and listening in well under a second; SIGTERM runs its
    shutdown hook (exit 143).

    heap      -Xmx of the JVM
    jvm_opts  extra JVM options (default FAST_START_JVM_OPTS)
    """

    NAME, VERSION, FETCH = "mongo-java-server", MONGO_JAVA_SERVER_VERSION, "mongo-java-server"
    MAIN_CLASS = "local.gateway.tests.MongoJavaTestServer"

    def __init__(self, heap: str = "512m", jvm_opts: Sequence[str] | None = None):
        super().__init__()
        self.heap = heap
        self.jvm_opts = list(FAST_START_JVM_OPTS if jvm_opts is None else jvm_opts)

    def _command(self) -> list[str]:
        return ["java", f"-Xmx{self.heap}", "-Djava.awt.headless=true", *self.jvm_opts,
                "-cp", f"{mongo_java_server_jars_dir()}/*", self.MAIN_CLASS,
                str(self.port), "127.0.0.1"]


# --------------------------------------------------------------------------
# Producing test records

def _encode(record) -> tuple[bytes | None, bytes | None]:
    """(key, value) for one record: a dict is JSON with key = its userId (or
    user_id); bytes/str are a raw value with no key; a (key, value) tuple is
    taken as is (either may be None, str or bytes; a dict value becomes JSON)."""
    def b(x):
        if x is None or isinstance(x, bytes):
            return x
        if isinstance(x, str):
            return x.encode()
        if isinstance(x, (dict, list)):
            return json.dumps(x).encode()
        raise TypeError(f"cannot encode {type(x).__name__} for Kafka")

    if isinstance(record, dict):
        key = record.get("userId", record.get("user_id"))
        return (None if key is None else str(key).encode()), json.dumps(record).encode()
    if isinstance(record, tuple) and len(record) == 2:
        return b(record[0]), b(record[1])
    if isinstance(record, (bytes, str)):
        return None, b(record)
    raise TypeError(f"unsupported record type {type(record).__name__}")


def produce(bootstrap: str, topic: str, records: Iterable, timeout: float = 30.0,
            config: dict | None = None) -> list[tuple[int, int]]:
    """Produce RECORDS to TOPIC (idempotent producer, acks=all), flush, and
    assert every delivery succeeded. Returns [(partition, offset)] in order.

    A record is a dict (JSON, key = its userId or user_id), raw bytes or str
    (value, no key), or a (key, value) tuple. CONFIG adds or overrides
    librdkafka settings, e.g. {"enable.idempotence": False}.
    """
    from confluent_kafka import Producer

    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 0,
        "logger": _client_logger(),
    }
    conf.update(config or {})
    producer = Producer(conf)
    records = list(records)
    results: list = [None] * len(records)

    def on_delivery(i):
        def cb(err, msg):
            results[i] = err if err is not None else (msg.partition(), msg.offset())
        return cb

    for i, record in enumerate(records):
        key, value = _encode(record)
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery(i))
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(timeout)
    assert remaining == 0, f"{remaining} of {len(records)} records to {topic} not delivered in {timeout} s"
    failed = [(i, r) for i, r in enumerate(results) if not isinstance(r, tuple)]
    assert not failed, f"deliveries to {topic} failed: {failed[:10]}"
    return results
