"""Running without containers: `make install` into a DESTDIR puts exactly
the expected files; the systemd unit passes `systemd-analyze verify`; and
the unit's ExecStart, run from the DESTDIR in another folder with settings
from an environment file as the unit reads them, serves test.html,
delivers, keeps serving after SIGHUP (ExecReload), and on SIGTERM
(KillSignal) stores what was in flight and exits within TimeoutStopSec."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import BUILD_DIR, REPO, produce
from servers import free_port, wait_http_ok
from wsclient import Tab

PREFIX = "/usr/local"
EXPECTED = {
    "usr/local/bin/notification-gateway",
    "usr/local/bin/notification-producer",
    "usr/local/lib/systemd/system/notification-gateway.service",
    "usr/local/share/doc/notification-gateway/README.md",
    "usr/local/share/doc/notification-gateway/gateway.env.example",
    "usr/local/share/notification-gateway/web/status.html",
    "usr/local/share/notification-gateway/web/test.html",
}


def unit_values(unit: Path) -> dict:
    values = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), value.strip())
    return values


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("destdir")
    run = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", f"PREFIX={PREFIX}",
                          f"BUILD={BUILD_DIR}"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return dest


def test_install_puts_exactly_the_expected_files(installed):
    files = {str(p.relative_to(installed)) for p in installed.rglob("*") if p.is_file()}
    assert files == EXPECTED
    assert os.access(installed / "usr/local/bin/notification-gateway", os.X_OK)
    unit = unit_values(installed / "usr/local/lib/systemd/system/notification-gateway.service")
    assert unit["ExecStart"] == f"{PREFIX}/bin/notification-gateway"


def test_the_unit_verifies(installed, tmp_path):
    """systemd-analyze verify on a copy whose ExecStart names the DESTDIR
    binary (--root wants a whole system tree)."""
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing: scripts/install-deps.sh test installs systemd")
    unit = installed / "usr/local/lib/systemd/system/notification-gateway.service"
    copy = tmp_path / "notification-gateway.service"
    copy.write_text(unit.read_text().replace(f"ExecStart={PREFIX}/bin/",
                                             f"ExecStart={installed}{PREFIX}/bin/"))
    run = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout + run.stderr == "", run.stdout + run.stderr


def test_the_units_command_serves_reloads_and_drains(installed, kafka, mongo, topic,
                                                     mongo_db_name, gateway_group, tmp_path):
    unit = unit_values(installed / "usr/local/lib/systemd/system/notification-gateway.service")
    binary = str(installed) + unit["ExecStart"].split()[0]
    port = free_port()
    env_file = tmp_path / "gateway.env"
    env_file.write_text(f"KAFKA_BROKERS={kafka.bootstrap}\nKAFKA_TOPIC={topic}\n"
                        f"KAFKA_GROUP={gateway_group}\nMONGODB_URI={mongo.uri}\n"
                        f"MONGODB_DB={mongo_db_name}\nPORT={port}\nAUTH=none\n")
    env = {"PATH": "/usr/bin:/bin"}
    for line in env_file.read_text().splitlines():
        key, value = line.split("=", 1)
        env[key] = value
    work = tmp_path / "elsewhere"  # not the checkout: web files found from the binary
    work.mkdir()
    log = open(tmp_path / "gateway.log", "w")
    proc = subprocess.Popen([binary], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", 30, still=lambda: proc.poll() is None,
                     why=lambda: (tmp_path / "gateway.log").read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()

        async def scenario():
            async with Tab(f"ws://127.0.0.1:{port}/?userId=inst") as tab:
                produce(kafka.bootstrap, topic, [{"id": "i1", "userId": "inst", "message": "m"}])
                await tab.wait_for(1)
            proc.send_signal(signal.SIGHUP)  # ExecReload: keys re-read, nothing stops
            await asyncio.sleep(0.5)
            assert proc.poll() is None
            async with Tab(f"ws://127.0.0.1:{port}/?userId=inst", ack=False) as tab:
                produce(kafka.bootstrap, topic, [{"id": "i2", "userId": "inst", "message": "m"}])
                await tab.wait_for(1)
                # KillSignal with a notification in flight: it is stored.
                started = time.monotonic()
                proc.send_signal(getattr(signal, unit["KillSignal"]))
                code = await asyncio.to_thread(proc.wait, int(unit["TimeoutStopSec"]))
                assert code == 0 and time.monotonic() - started < int(unit["TimeoutStopSec"])
        asyncio.run(scenario())
        with mongo.client() as c:
            assert [d["id"] for d in c[mongo_db_name].notifications.find({"userId": "inst"})] \
                == ["i2"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
