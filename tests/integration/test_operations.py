"""What operators read: /metrics in the Prometheus text format (parsed
with prometheus_client), behind API keys; /readyz is in test_gateway.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from servers import produce
from wsclient import Tab

KEY = "ops-key-0123456789abcdef"


def get(gw, path: str, key: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(gw.http_url(path))
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_metrics_need_an_api_key_and_count_what_happens(kafka, topic, gateway, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# operators\nprometheus " + KEY + "\n")
    gw = gateway(args=["--api-keys-file", str(keys)])
    assert get(gw, "/metrics")[0] == 401
    assert get(gw, "/metrics", "not-the-key-0123456789")[0] == 403

    produce(kafka.bootstrap, topic, [{"id": "m1", "userId": "mia", "message": "hi",
                                      "timestamp": "2026-12-03T12:00:00Z"}, ("mia", b"junk")])

    async def scenario():
        async with Tab(gw.ws_url("mia")) as tab:
            await tab.wait_for(1)
            await asyncio.sleep(0.3)  # the ack
    asyncio.run(scenario())
    gw.wait_health("the dead letter", lambda h: h["deadLettered"] == 1)
    status, text = get(gw, "/metrics", KEY)
    assert status == 200
    got = samples(text)
    for name in ("gateway_notifications_consumed_total", "gateway_notifications_pushed_total",
                 "gateway_notifications_acknowledged_total",
                 "gateway_notifications_dead_lettered_total"):
        assert got[(name, frozenset())] >= 1, (name, got)
    assert got[("gateway_connections", frozenset())] == 0
    assert got[("gateway_connections_refused_total", frozenset({("reason", "origin")}))] == 0
    assert got[("gateway_memory_budget_bytes", frozenset())] == 256 * 2**20
    assert KEY not in gw.log_text()

    # A new key file on SIGHUP: the new key works, the old one no longer.
    keys.write_text("prometheus ops-key-rotated-0123456789\n")
    os.kill(gw.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while get(gw, "/metrics", "ops-key-rotated-0123456789")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert get(gw, "/metrics", KEY)[0] == 403


def test_without_keys_metrics_are_closed_unless_opened(gateway):
    gw = gateway()
    status, body = get(gw, "/metrics")
    assert (status, json.loads(body)) == (403, {"error": "no API keys configured: see "
                                                         "--api-keys-file"})
    opened = gateway(args=["--ops-open"])
    status, text = get(opened, "/metrics")
    assert status == 200 and samples(text)[("gateway_users_online", frozenset())] == 0
