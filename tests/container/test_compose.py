"""docker-compose.yml run for real with docker-compose 1.29 driving podman,
with stand-ins for the images no registry gives us here (Kafka from the
jars the tests fetch, MongoDB as FerretDB): up comes healthy, kafka-init
made the topics, the gateway is unhealthy while the store or Kafka is
stopped and healthy again after, a notification for someone away is
stored in the mongo service and survives down and up, and the gateway
stops within its grace period."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import jwt as pyjwt
import pytest

from conftest import can_network, phase
from servers import REPO, ensure_fetched, ferretdb_binary, kafka_jars_dir
from wsclient import Tab

STANDINS = Path(__file__).resolve().parent / "standins"
PROJECT = "ngtest"
SECRET = "compose-test-secret-0123456789abcdef"


def build_standin(podman, name: str, tags: list[str], files: dict, tmp: Path) -> None:
    """Builds STANDINS/name with extra files copied into its context."""
    if all(podman.run("image", "exists", t).returncode == 0 for t in tags):
        return
    ctx = tmp / name
    shutil.copytree(STANDINS / name, ctx)
    for dest, src in files.items():
        if Path(src).is_dir():
            shutil.copytree(src, ctx / dest)
        else:
            shutil.copy2(src, ctx / dest)
    podman.ok("build", "--pull=never", "--format", "docker", "--network", "host",
              *[a for t in tags for a in ("-t", t)], str(ctx), timeout=1200)


class Compose:
    def __init__(self, podman, sock: Path):
        self.podman = podman
        self.env = dict(podman.env, DOCKER_HOST=f"unix://{sock}", JWT_SECRET=SECRET,
                        COMPOSE_INTERACTIVE_NO_CLI="1")

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(["docker-compose", "-p", PROJECT, "-f",
                               str(REPO / "docker-compose.yml"), "-f",
                               str(STANDINS / "compose.override.yml"), *args],
                              cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args: str, timeout: float = 600) -> str:
        r = self.run(*args, timeout=timeout)
        assert r.returncode == 0, f"docker-compose {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def health(self, service: str) -> str:
        return self.podman.run("inspect", "-f", "{{.State.Health.Status}}",
                               f"{PROJECT}_{service}_1").stdout.strip()

    def wait_health(self, service: str, status: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.health(service) != status:
            assert time.monotonic() < deadline, (
                f"{service} not {status} ({self.health(service)}):\n"
                + self.run("logs", "--tail", "60", service).stdout)
            time.sleep(1)

    def wait_check(self, service: str, passes: bool, timeout: float = 90) -> None:
        """Until the service's health check, run now, passes or fails."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.podman.run("healthcheck", "run", f"{PROJECT}_{service}_1", timeout=60)
            if (r.returncode == 0) == passes:
                return
            assert time.monotonic() < deadline, (
                f"{service}'s health check still {'fails' if passes else 'passes'}:\n"
                + self.run("logs", "--tail", "30", service).stdout)
            time.sleep(1)

    def wait_healthy(self, service: str, timeout: float = 180) -> None:
        self.wait_health(service, "healthy", timeout)


@pytest.fixture
def compose(podman, image, tmp_path):
    can_network(podman)
    ensure_fetched("kafka")
    ensure_fetched("ferretdb")
    started = time.monotonic()
    build_standin(podman, "kafka", ["docker.io/apache/kafka:4.1.1"],
                  {"libs": kafka_jars_dir()}, tmp_path)
    build_standin(podman, "mongo", ["docker.io/library/mongo:7"],
                  {"ferretdb": ferretdb_binary()}, tmp_path)
    podman.ok("tag", image, "docker.io/library/notification-gateway:latest")
    phase("stand-in images", started)
    sock = podman.root / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                               env=podman.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    # No systemd runs health checks here: this loop does, as a Docker
    # engine would, so that depends_on: service_healthy sees them.
    stop = threading.Event()

    def check(cid: str) -> None:
        try:
            podman.run("healthcheck", "run", cid, timeout=60)
        except subprocess.TimeoutExpired:
            pass  # its next check comes

    def checks():
        # Each container's check on its own: Kafka's starts a JVM.
        while not stop.wait(2):
            ids = podman.run("ps", "-q", "--filter",
                             f"label=com.docker.compose.project={PROJECT}").stdout.split()
            runs = [threading.Thread(target=check, args=(cid,)) for cid in ids]
            for t in runs:
                t.start()
            for t in runs:
                t.join()
    loop = threading.Thread(target=checks, daemon=True)
    loop.start()
    c = Compose(podman, sock)
    deadline = time.monotonic() + 20
    while c.run("ps").returncode != 0:
        assert time.monotonic() < deadline, "podman system service did not answer"
        time.sleep(0.2)
    c.run("down", "-v", timeout=300)  # what an interrupted run left
    try:
        yield c
    finally:
        c.run("down", "-v", timeout=300)
        stop.set()
        loop.join(10)
        service.terminate()
        service.wait(10)


def token(user: str) -> str:
    now = int(time.time())
    return pyjwt.encode({"sub": user, "iat": now, "exp": now + 600}, SECRET, algorithm="HS256")


def test_compose_comes_up_healthy_keeps_what_it_stored_and_drains(compose):
    started = time.monotonic()
    compose.ok("up", "-d", "--no-build", timeout=600)
    compose.wait_healthy("gateway")
    phase("compose up, gateway healthy", started)
    topics = compose.ok("exec", "-T", "kafka", "/opt/kafka/bin/kafka-topics.sh",
                        "--bootstrap-server", "localhost:9092", "--list").split()
    assert {"notifications", "notifications.dlq"} <= set(topics), topics

    # Healthy means ready: the gateway's health check fails while the store
    # or Kafka is stopped, and passes again after. (Asked directly: the
    # status itself turns only after the 60 s start period and three
    # failures.)
    for service in ("mongo", "kafka"):
        compose.ok("stop", "-t", "5", service, timeout=120)
        compose.wait_check("gateway", passes=False)
        compose.ok("start", service, timeout=120)
        compose.wait_check("gateway", passes=True)

    # For someone away, through the README's producer command: stored.
    compose.ok("run", "--rm", "producer", "--user", "away", "--id", "kept", "--message", "later")
    time.sleep(3)  # stored, and its offset committed
    compose.ok("down", timeout=300)  # no -v: the volumes stay
    compose.ok("up", "-d", "--no-build", timeout=600)
    compose.wait_healthy("gateway")

    async def replayed():
        async with Tab(f"ws://127.0.0.1:8083/?token={token('away')}") as tab:
            frames = await tab.wait_for(1, timeout=30)
            assert frames[0]["id"] == "kept" and frames[0]["replayed"] is True
    asyncio.run(replayed())

    t0 = time.monotonic()
    compose.ok("stop", "gateway", timeout=120)
    took = time.monotonic() - t0
    code = compose.podman.ok("inspect", "-f", "{{.State.ExitCode}}",
                             f"{PROJECT}_gateway_1").strip()
    assert code == "0" and took < 30, (code, took)
