"""The image alone, with its embedded broker, run with the README's own
commands (`docker run -p …:8083`, `docker exec gw producer --brokers
localhost:9092 …`): ready, delivering what `exec` and HTTP publishing send,
and keeping what it stored across a new container on the same volume."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

from conftest import LABEL, can_network
from servers import free_port, wait_http_ok
from wsclient import Tab

KEY = "container-key-0123456789abcdef"


def wait_ready(port: int, podman, name: str, timeout: float = 60) -> None:
    def running() -> bool:
        return podman.run("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"

    def logs() -> str:
        r = podman.run("logs", name)
        return f"{name}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout, still=running, why=logs)


def test_the_embedded_image_delivers_and_keeps_what_it_stored(podman, image, tmp_path):
    can_network(podman)
    port = free_port()
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "keys").write_text(f"test {KEY}\n")
    keys.chmod(0o755)
    (keys / "keys").chmod(0o644)
    volume = "gw-test-state"
    podman.ok("volume", "create", "--label", LABEL, volume)

    def start(name: str) -> None:
        # The README's docker run, on a free host port, plus the key file.
        podman.ok("run", "-d", "--name", name, "--label", LABEL,
                  "-p", f"127.0.0.1:{port}:8083", "-e", "EMBEDDED=true",
                  "-v", f"{volume}:/var/lib/notification-gateway",
                  "-e", "API_KEYS_FILE=/keys/keys", "-v", f"{keys}:/keys:ro", image)
        wait_ready(port, podman, name)

    def publish(item: dict) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/notifications",
                                     data=json.dumps(item).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {KEY}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status

    start("gw")

    async def first():
        async with Tab(f"ws://127.0.0.1:{port}/?userId=u1") as tab:
            # The README's command, inside the container.
            podman.ok("exec", "gw", "producer", "--brokers", "localhost:9092",
                      "--user", "u1", "--id", "by-exec", "--message", "hi")
            await tab.wait_for(1, timeout=30)
            assert await asyncio.to_thread(publish, {"id": "by-http", "userId": "u1",
                                                     "message": "hello"}) == 202
            await tab.wait_for(2, timeout=30)
            assert tab.ids == ["by-exec", "by-http"]
    asyncio.run(first())
    # For someone away: stored in the state volume.
    podman.ok("exec", "gw", "producer", "--brokers", "localhost:9092",
              "--user", "away", "--id", "kept", "--message", "later")
    deadline = time.monotonic() + 20
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as r:
            if json.load(r)["stored"] >= 1:
                break
        assert time.monotonic() < deadline, "the notification for 'away' was not stored"
        time.sleep(0.3)
    started = time.monotonic()
    podman.ok("stop", "-t", "30", "gw")
    assert podman.ok("inspect", "-f", "{{.State.ExitCode}}", "gw").strip() == "0"
    assert time.monotonic() - started < 30
    podman.ok("rm", "gw")

    # A new container on the same volume: the stored one is still there.
    start("gw-again")

    async def second():
        async with Tab(f"ws://127.0.0.1:{port}/?userId=away") as tab:
            frames = await tab.wait_for(1, timeout=30)
            assert frames[0]["id"] == "kept" and frames[0]["replayed"] is True
    asyncio.run(second())
