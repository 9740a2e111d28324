"""A WebSocket client for the tests, as a browser tab would be: it connects
as a user, collects every notification frame, and acknowledges each one
unless told not to; and a tab that stopped reading (stalled_tab)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import websockets


class Tab:
    def __init__(self, url: str, ack: bool = True, ack_field: str = "id"):
        self.url = url
        self.ack = ack
        self.ack_field = ack_field
        self.frames: list[dict] = []
        self.arrived_at: list[float] = []  # time.time() of each frame
        self.ws = None
        self._reader = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> "Tab":
        self.ws = await websockets.connect(self.url, max_size=2**20)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            try:
                await self._reader
            except Exception:
                pass

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                self.arrived_at.append(time.time())
                self.frames.append(msg)
                if self.ack:
                    await self.send_ack(msg["id"])
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass

    async def send_ack(self, notification_id: str) -> None:
        await self.ws.send(json.dumps({"type": "ack", self.ack_field: notification_id}))

    @property
    def ids(self) -> list[str]:
        return [f["id"] for f in self.frames]

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[dict]:
        """Wait until COUNT frames arrived; returns them (fails on timeout)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.frames) < count:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(
                    f"{self.url}: expected {count} notifications within {timeout} s, "
                    f"got {len(self.frames)}: {self.ids}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass
        return self.frames

    async def quiet_for(self, seconds: float) -> None:
        """Assert that nothing more arrives for SECONDS."""
        before = len(self.frames)
        await asyncio.sleep(seconds)
        assert len(self.frames) == before, f"unexpected frames: {self.frames[before:]}"


async def recv_frames(ws, count: int, timeout: float = 10.0) -> list[dict]:
    """The next COUNT frames of a raw websockets connection, as JSON, each
    within TIMEOUT seconds; nothing is acknowledged."""
    got = []
    while len(got) < count:
        got.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    return got


def stalled_tab(port: int, user: str) -> socket.socket:
    """A WebSocket connection that, once open, neither reads nor acks."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(f"GET /?userId={user} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    assert b" 101 " in s.recv(1024).split(b"\r\n")[0]
    return s
