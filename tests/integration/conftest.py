"""Fixtures for the integration tests: a real Kafka broker, real
MongoDB-wire servers (FerretDB; mongo-java-server) and the gateway daemon
(build/consumer).

Session-scoped (started once, stopped at the end of the session; each only
when a test asks for it):
    kafka           servers.KafkaServer: .bootstrap "127.0.0.1:PORT",
                    .create_topic(name, partitions=3), .admin()
    mongo           servers.MongoJavaServer (mongo-java-server, in memory):
                    .uri "mongodb://127.0.0.1:PORT/", .client(); the
                    functional tests' store (fast, indexes nothing but answers
                    a find in milliseconds at the sizes the tests store)
    ferretdb        servers.FerretDB (on SQLite, data on disk): the same .uri
                    and .client(); for the store contract suite. Scenarios
                    that need a slow store or one that survives being killed
                    start their own FerretDB.

Function-scoped (fresh for every test):
    topic           name of a new topic with 3 partitions on `kafka`
    mongo_db_name   a new, unused database name on `mongo` (dropped afterwards)
    gateway_group   a consumer group name unique to the test
    gateway         factory: gateway(**overrides) -> Gateway (see Gateway)

Helper (re-exported from servers): produce(bootstrap, topic, records).

The gateway binary must have been built (`make all`) before pytest runs; set
GATEWAY_BIN to use another binary.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402
from servers import (REPO, FerretDB, KafkaServer, MongoJavaServer, free_port,  # noqa: E402,F401
                     produce, tail)

# `make test` points these at its build folder (another one for sanitizer builds).
BUILD_DIR = Path(os.environ.get("BUILD_DIR") or (REPO / "build"))
GATEWAY_BIN = Path(os.environ.get("GATEWAY_BIN") or (BUILD_DIR / "consumer"))
PRODUCER_BIN = Path(os.environ.get("PRODUCER_BIN") or (BUILD_DIR / "producer"))
WEB_ROOT = REPO / "web"
# The gateway also reads its settings from these; a test's gateway must not
# pick them up from the environment pytest runs in.
GATEWAY_ENV_VARS = ("KAFKA_BROKERS", "KAFKA_TOPIC", "KAFKA_GROUP", "MONGODB_URI",
                    "MONGODB_DB", "PORT", "BIND_ADDRESS", "WEB_ROOT", "AUTH", "JWT_SECRET",
                    "JWT_SECRET_FILE", "JWT_PUBLIC_KEY_FILE", "JWKS_FILE", "ALLOWED_ORIGINS",
                    "FRONTEND_URL", "TRUSTED_PROXIES")
# Tests open hundreds of connections from 127.0.0.1 as many users; the
# per-address limits are tested on their own.
MANY_PER_ADDRESS = "1000000"


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "_", text).strip("_")[:limit] or "t"


def unique_name(request, prefix: str, limit: int = 40) -> str:
    """PREFIX-<test name>-<random>, safe as a Kafka topic, group or MongoDB
    database name (letters, digits, '_' and '-', at most ~60 characters)."""
    return f"{prefix}-{_slug(request.node.name, limit)}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------
# Remember each phase's report, so that teardown can tell a failed test.

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _test_failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


# --------------------------------------------------------------------------
# Servers

@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    server = KafkaServer()
    server.start(tmp_path_factory.mktemp("kafka"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo(tmp_path_factory):
    server = MongoJavaServer()
    server.start(tmp_path_factory.mktemp("mongo-java-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory):
    server = FerretDB()
    server.start(tmp_path_factory.mktemp("ferretdb"))
    yield server
    server.stop()


@pytest.fixture
def topic(kafka, request) -> str:
    """A fresh topic with 3 partitions, created and ready."""
    return kafka.create_topic(unique_name(request, "t"), partitions=3)


@pytest.fixture
def mongo_db_name(mongo, request):
    """A database name no other test uses; the database is dropped afterwards."""
    name = unique_name(request, "db", limit=30).replace("-", "_")
    yield name
    try:
        with mongo.client(serverSelectionTimeoutMS=2000) as c:
            c.drop_database(name)
    except Exception:
        pass


@pytest.fixture
def gateway_group(request) -> str:
    """The consumer group the test's gateways join (one per test)."""
    return unique_name(request, "g")


# --------------------------------------------------------------------------
# The gateway daemon

class Gateway:
    """One gateway process (build/consumer) started by the `gateway` fixture.

    .port          its HTTP/WebSocket port on 127.0.0.1
    .ws_url(user)  "ws://127.0.0.1:PORT/?userId=USER"
    .http_url(p)   "http://127.0.0.1:PORT" + p
    .log_path      its stdout+stderr (kept across restarts)
    .log_text()    that log as text
    .stop(timeout=10) -> exit code   SIGTERM; SIGKILL if still running after timeout
    .kill() -> exit code             SIGKILL
    .restart()     start again with the same command line (same port), wait healthy
    .peak_rss_mib()  the most resident memory any of its processes reached (VmHWM)
    .running, .pid, .returncode, .cmd
    """

    def __init__(self, cmd: list[str], port: int, log_path: Path, env: dict,
                 ready_timeout: float, ops_key: str | None = None):
        self.cmd = cmd
        self.ops_key = ops_key  # an API key for /status.json (health())
        self.port = port
        self.log_path = log_path
        self.env = env
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.peak_rss_kib = 0  # of the processes already stopped or killed

    # -- addresses
    def ws_url(self, user: str) -> str:
        return f"ws://127.0.0.1:{self.port}/?userId={user}"

    def http_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- process
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def _note_peak_rss(self) -> None:
        if not self.running:
            return
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))

    def peak_rss_mib(self) -> float:
        self._note_peak_rss()
        return self.peak_rss_kib / 1024

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, wait: bool = True) -> "Gateway":
        if self.running:
            raise RuntimeError(f"gateway on port {self.port} is already running")
        if self.starts:
            with open(self.log_path, "a") as f:
                f.write(f"\n===== restart #{self.starts} =====\n")
        self.starts += 1
        self.proc = servers.spawn(self.cmd, self.log_path, cwd=REPO, env=self.env,
                                  append=self.starts > 1)
        if wait:
            self.wait_healthy()
        return self

    def health(self) -> dict:
        """GET /status.json (what the gateway holds and waits for), as JSON,
        with the gateway's API key; /healthz is liveness only."""
        req = urllib.request.Request(self.http_url("/status.json"))
        if self.ops_key:
            req.add_header("Authorization", f"Bearer {self.ops_key}")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def wait_health(self, what: str, pred, timeout: float = 10.0) -> dict:
        """Poll health() until PRED(health) holds; fails saying WHAT was awaited."""
        deadline = time.monotonic() + timeout
        h = {}
        while time.monotonic() < deadline:
            h = self.health()
            if pred(h):
                return h
            time.sleep(0.05)
        raise AssertionError(f"gateway never reached: {what}; last /status.json: {h}")

    def wait_assigned(self, timeout: float = 30.0) -> None:
        """Until the gateway's consumer group gave it its partitions."""
        self.wait_health("partitions assigned", lambda h: h["partitions"] > 0, timeout)

    def healthz(self, timeout: float = 1.0) -> int | None:
        """Status of GET /healthz, or None if nothing answered."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Wait until GET /healthz answers 200; on failure kill the process
        and raise with the end of its log."""
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"gateway exited with code {self.proc.returncode} before it was healthy\n"
                    f"command: {' '.join(self.cmd)}\nlast lines of {self.log_path}:\n"
                    f"{tail(self.log_path)}")
            status = self.healthz()
            if status == 200:
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"gateway did not answer GET /healthz with 200 within {timeout} s "
            f"(last status: {status})\ncommand: {' '.join(self.cmd)}\n"
            f"last lines of {self.log_path}:\n{tail(self.log_path)}")

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM and wait; SIGKILL after TIMEOUT seconds. Returns the exit
        code (negative = killed by that signal), None if never started."""
        if self.proc is None:
            return None
        self._note_peak_rss()
        return servers.terminate(self.proc, timeout)

    def kill(self) -> int | None:
        """SIGKILL (a crash, as far as the gateway can tell). Returns the exit code."""
        if self.proc is None:
            return None
        self._note_peak_rss()
        return servers.terminate(self.proc, timeout=10, sig=signal.SIGKILL)

    def restart(self, wait: bool = True) -> "Gateway":
        """Stop it if it still runs, then start it again with the same
        command line and port."""
        self.stop()
        return self.start(wait=wait)

    def __repr__(self) -> str:
        return f"<Gateway port={self.port} pid={self.pid} running={self.running}>"


HARNESS_KEY = "harness-key-0123456789abcdef"


def first_api_key(path) -> str | None:
    """The first key of an API key file (NAME KEY lines)."""
    for line in Path(path).read_text().splitlines():
        words = line.split()
        if len(words) == 2 and not line.lstrip().startswith("#"):
            return words[1]
    return None


@pytest.fixture
def gateway(kafka, mongo, topic, mongo_db_name, gateway_group, tmp_path, request):
    """Factory that starts gateway daemons; all are stopped after the test.

        gw = gateway()                      # defaults below, waits for /healthz
        gw = gateway(topic="other", args=["--max-connections", "10"])

    Overrides (keyword arguments); a flag whose value is None is left out:
        brokers       kafka.bootstrap
        topic         the `topic` fixture
        group         the `gateway_group` fixture (the same for every gateway
                      of one test, so several join one consumer group)
        mongodb_uri   mongo.uri
        mongodb_db    the `mongo_db_name` fixture
        port          a free port
        web_root      REPO/web
        auth          "none" (tests about identity pass "jwt" and a key)
        api_keys_file one holding HARNESS_KEY, which health() sends; a test
                      that passes its own in args has its first key sent;
                      None: no key file (operators' routes closed)
        max_connections_per_address, connect_rate_per_address,
        connect_burst_per_address   MANY_PER_ADDRESS (tests of the limits
                      pass their own)
        args          extra command-line arguments (list), appended
        env           extra environment variables (dict); the gateway's own
                      (KAFKA_BROKERS, PORT, ...) are not inherited from pytest's
        wait          False: return at once, without waiting for /healthz
        ready_timeout seconds to wait for /healthz (20)
    """
    started: list[Gateway] = []

    def start(**overrides) -> Gateway:
        if not GATEWAY_BIN.is_file() or not os.access(GATEWAY_BIN, os.X_OK):
            pytest.fail(
                f"gateway binary {GATEWAY_BIN} is missing or not executable: "
                "build it with `make all` before running the integration tests",
                pytrace=False)
        flags = {
            "brokers": kafka.bootstrap,
            "topic": topic,
            "group": gateway_group,
            "mongodb_uri": mongo.uri,
            "mongodb_db": mongo_db_name,
            "port": None,
            "web_root": str(WEB_ROOT),
            "auth": "none",
            "api_keys_file": None,
            "max_connections_per_address": MANY_PER_ADDRESS,
            "connect_rate_per_address": MANY_PER_ADDRESS,
            "connect_burst_per_address": MANY_PER_ADDRESS,
        }
        extra_args = list(overrides.pop("args", None) or [])
        extra_env = dict(overrides.pop("env", None) or {})
        wait = overrides.pop("wait", True)
        ready_timeout = overrides.pop("ready_timeout", 20.0)
        unknown = set(overrides) - set(flags)
        if unknown:
            raise TypeError(f"gateway(): unknown overrides {sorted(unknown)}")
        ops_key = None
        if "--api-keys-file" in extra_args:
            ops_key = first_api_key(extra_args[extra_args.index("--api-keys-file") + 1])
        elif "api_keys_file" not in overrides:
            harness_keys = tmp_path / "harness-api-keys"
            harness_keys.write_text(f"harness {HARNESS_KEY}\n")
            flags["api_keys_file"], ops_key = str(harness_keys), HARNESS_KEY
        flags.update(overrides)
        port = flags["port"] = int(flags["port"]) if flags["port"] is not None else free_port()

        cmd = [str(GATEWAY_BIN)]
        for name, value in flags.items():
            if value is not None:
                cmd += ["--" + name.replace("_", "-"), str(value)]
        cmd += [str(a) for a in extra_args]
        env = {k: v for k, v in os.environ.items() if k not in GATEWAY_ENV_VARS}
        env.update({k: str(v) for k, v in extra_env.items()})

        gw = Gateway(cmd, port, tmp_path / f"gateway-{len(started) + 1}.log", env, ready_timeout,
                     ops_key)
        started.append(gw)
        gw.start(wait=wait)
        return gw

    yield start

    failed = _test_failed(request)
    sanitizer_reports = []
    for gw in started:
        code = gw.stop()
        # A sanitizer build reports memory errors and leaks in the log.
        for line in gw.log_text().splitlines():
            if "ERROR: AddressSanitizer" in line or "ERROR: LeakSanitizer" in line \
                    or "runtime error:" in line:
                sanitizer_reports.append(f"{gw.log_path}: {line}")
        if failed and gw.starts:
            # Shown by pytest under "Captured stderr teardown" of the failed test.
            print(f"\n----- gateway on port {gw.port} (exit {code}): {gw.log_path}\n"
                  f"{tail(gw.log_path, 80)}", file=sys.stderr)
    if sanitizer_reports:
        pytest.fail("sanitizer reports in the gateway's log:\n" + "\n".join(sanitizer_reports[:20]),
                    pytrace=False)
