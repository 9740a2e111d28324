"""The image alone, with its embedded broker: ready, delivering what the
README's `exec` command and HTTP publishing send, and keeping what it
stored across a new container on the same volume."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

from conftest import LABEL
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
    port, kafka_port = free_port(), free_port()
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "keys").write_text(f"test {KEY}\n")
    keys.chmod(0o755)
    (keys / "keys").chmod(0o644)
    volume = "gw-test-state"
    podman.ok("volume", "create", "--label", LABEL, volume)

    def start(name: str) -> None:
        podman.ok("run", "-d", "--name", name, "--label", LABEL, "--network", "host",
                  "-e", "EMBEDDED=true", "-e", f"PORT={port}", "-e", f"EMBEDDED_PORT={kafka_port}",
                  "-e", "API_KEYS_FILE=/keys/keys", "-v", f"{keys}:/keys:ro",
                  "-v", f"{volume}:/var/lib/notification-gateway", image)
        wait_ready(port, podman, name)

    def publish(item: dict) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/notifications",
                                     data=json.dumps(item).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {KEY}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status

    start("gw-first")

    async def first():
        async with Tab(f"ws://127.0.0.1:{port}/?userId=u1") as tab:
            # The README's command, inside the container.
            podman.ok("exec", "gw-first", "producer", "--brokers", f"localhost:{kafka_port}",
                      "--user", "u1", "--id", "by-exec", "--message", "hi")
            await tab.wait_for(1, timeout=30)
            assert await asyncio.to_thread(publish, {"id": "by-http", "userId": "u1",
                                                     "message": "hello"}) == 202
            await tab.wait_for(2, timeout=30)
            assert tab.ids == ["by-exec", "by-http"]
    asyncio.run(first())
    # For someone away: stored in the state volume.
    podman.ok("exec", "gw-first", "producer", "--brokers", f"localhost:{kafka_port}",
              "--user", "away", "--id", "kept", "--message", "later")
    deadline = time.monotonic() + 20
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as r:
            if json.load(r)["stored"] >= 1:
                break
        assert time.monotonic() < deadline, "the notification for 'away' was not stored"
        time.sleep(0.3)
    started = time.monotonic()
    podman.ok("stop", "-t", "30", "gw-first")
    assert podman.ok("inspect", "-f", "{{.State.ExitCode}}", "gw-first").strip() == "0"
    assert time.monotonic() - started < 30
    podman.ok("rm", "gw-first")

    # A new container on the same volume: the stored one is still there.
    start("gw-second")

    async def second():
        async with Tab(f"ws://127.0.0.1:{port}/?userId=away") as tab:
            frames = await tab.wait_for(1, timeout=30)
            assert frames[0]["id"] == "kept" and frames[0]["replayed"] is True
    asyncio.run(second())
