"""The newcomer's path: a clean clone, `make run`, the producer with no
broker flag, and a WebSocket client, with no Kafka and no MongoDB server:
the gateway's embedded broker and its SQLite store."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from conftest import PRODUCER_BIN, REPO
from servers import free_port, tail
from wsclient import Tab


class MakeRun:
    def __init__(self, clone, port, kafka_port, log):
        self.clone, self.port, self.kafka_port, self.log = clone, port, kafka_port, log
        self.env = dict(os.environ, PORT=str(port), EMBEDDED_PORT=str(kafka_port))
        # A newcomer's shell: none of the settings, and no make of ours around it.
        for k in ("KAFKA_BROKERS", "KAFKA_TOPIC", "KAFKA_GROUP", "MONGODB_URI", "STORE_URI",
                  "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SANITIZE", "BUILD", "BUILD_DIR",
                  "GATEWAY_BIN", "PRODUCER_BIN"):
            self.env.pop(k, None)
        self.proc = None

    def start(self, timeout=300):
        seen = self.log.stat().st_size if self.log.exists() else 0  # an earlier run's lines
        out = open(self.log, "a")
        # Its own process group, so Ctrl-C can be sent the way a terminal does.
        self.proc = subprocess.Popen(["make", "run"], cwd=self.clone, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"make run exited:\n{tail(self.log)}"
            # Ready once producers are let in: the consumer has its partitions.
            if "ready: open" in self.log.read_text()[seen:]:
                # Embedded mode opens /status.json (--ops-open by default).
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status.json",
                                            timeout=1) as r:
                    assert b'"partitions":3' in r.read()
                return
            time.sleep(0.2)
        raise AssertionError(f"make run did not become ready:\n{tail(self.log)}")

    def ctrl_c(self, timeout=15) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def produce(self, *args) -> str:
        env = dict(self.env, KAFKA_BROKERS=f"127.0.0.1:{self.kafka_port}")
        run = subprocess.run([str(self.clone / "build" / "producer"), *args], env=env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clean clone, built by the first `make run` and reused after."""
    path = tmp_path_factory.mktemp("newcomer") / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(path)], check=True)
    return path


@pytest.fixture
def newcomer(clone, tmp_path):
    shutil.rmtree(clone / "data", ignore_errors=True)
    runner = MakeRun(clone, free_port(), free_port(), tmp_path / "make-run.log")
    yield runner
    if runner.proc and runner.proc.poll() is None:
        os.killpg(runner.proc.pid, signal.SIGKILL)
        runner.proc.wait()


def test_make_run_then_producer_reaches_a_browser_tab(newcomer):
    newcomer.start()
    log = newcomer.log.read_text()
    assert "in memory only" in log
    assert "producer" in log and "--user u1" in log  # the command to try is printed

    async def scenario():
        async with Tab(f"ws://127.0.0.1:{newcomer.port}/?userId=u1") as tab:
            await asyncio.sleep(0.2)
            sent = newcomer.produce("--user", "u1", "--message", "Hello")
            frames = await tab.wait_for(1)
            assert frames[0]["id"] == sent and frames[0]["message"] == "Hello"
    asyncio.run(scenario())

    # Other Kafka clients reach the embedded broker at the same address.
    listing = subprocess.run(["kcat", "-b", f"127.0.0.1:{newcomer.kafka_port}", "-L", "-t",
                              "notifications"], capture_output=True, text=True, timeout=30)
    assert "3 partitions" in listing.stdout, listing.stdout + listing.stderr
    # make ends itself with the same SIGINT once the gateway has exited.
    assert newcomer.ctrl_c() in (0, -signal.SIGINT)
    assert "info  stopped" in newcomer.log.read_text()


def test_offline_notification_survives_a_restart_in_sqlite_mode(newcomer):
    newcomer.start()
    sent = newcomer.produce("--user", "away", "--message", "kept on disk")
    db = newcomer.clone / "data" / "notifications.db"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = subprocess.run(["sqlite3", str(db), "select id from notifications"],
                              capture_output=True, text=True).stdout.split()
        if sent in rows:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"{sent} was not stored in {db}")
    # What users were sent is for the gateway's user alone.
    assert db.stat().st_mode & 0o777 == 0o600, oct(db.stat().st_mode)
    newcomer.ctrl_c()
    newcomer.start()

    async def scenario():
        async with Tab(f"ws://127.0.0.1:{newcomer.port}/?userId=away") as tab:
            frames = await tab.wait_for(1)
            assert frames[0]["id"] == sent and frames[0]["replayed"] is True
            await asyncio.sleep(0.5)
    asyncio.run(scenario())
    rows = subprocess.run(["sqlite3", str(db), "select count(*) from notifications"],
                          capture_output=True, text=True).stdout.strip()
    assert rows == "0"  # acknowledged, so deleted


@pytest.mark.parametrize("fetch", [[], ["-X", "queued.min.messages=1"]],
                         ids=["defaults", "fetch-when-empty"])
def test_a_50_mb_burst_to_one_partition_arrives_whole(gateway, tmp_path, fetch):
    """The embedded broker keeps at most 5 MB of a partition; the gateway
    paces producers by what its consumer has read, so a burst of 6,400
    notifications of 8 KB (50 MB) to one user, from the producer CLI right
    after start, is stored whole, and no offset reset is logged. Small
    fetches (fetch only when the local queue is empty) leave polls empty while the
    broker still holds unread records: those must not let producers on."""
    kafka_port = free_port()
    db = tmp_path / "notifications.db"
    gw = gateway(topic="notifications", args=["--embedded", "--embedded-port", kafka_port,
                                              "--store", f"sqlite:{db}", *fetch])
    lines = "".join(json.dumps({"id": f"burst-{i:05d}", "userId": "burst",
                                "message": "x" * 8000}) + "\n" for i in range(6400))
    started = time.monotonic()
    sent = subprocess.run([str(PRODUCER_BIN), "--brokers", f"127.0.0.1:{kafka_port}", "--stdin"],
                          input=lines, capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    assert len(sent.stdout.split()) == 6400
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as c:
            stored = c.execute("select count(*) from notifications").fetchone()[0]
        if stored == 6400:
            break
        time.sleep(0.5)
    print(f"50 MB burst in embedded mode ({' '.join(fetch) or 'defaults'}): {stored} of 6400 stored in "
          f"{time.monotonic() - started:.1f} s")
    assert stored == 6400
    assert "lost" not in gw.log_text()
