"""What operators read: /metrics in the Prometheus text format (parsed
with prometheus_client), behind API keys; /readyz is in test_gateway.py."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import HARNESS_KEY
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
            # A live one: its way from Kafka to the tab is timed.
            produce(kafka.bootstrap, topic, [{"id": "m2", "userId": "mia", "message": "live"}])
            await tab.wait_for(2)
            await asyncio.sleep(0.3)  # the acks
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
    assert got[("gateway_notifications_expired_total", frozenset())] == 0
    assert got[("gateway_acked_frames_dropped_total", frozenset())] == 0
    assert got[("gateway_connections_refused_total", frozenset({("reason", "origin")}))] == 0
    assert got[("gateway_memory_budget_bytes", frozenset())] == 256 * 2**20
    assert {dict(k[1])["part"] for k in got if k[0] == "gateway_memory_part_bytes"} == \
        {"handoff", "windows", "held", "storing"}
    # One lag per assigned partition; everything read, so 0 once librdkafka
    # knows each partition's end.
    deadline = time.monotonic() + 15
    while True:
        lags = {dict(k[1])["partition"]: v for k, v in samples(get(gw, "/metrics", KEY)[1]).items()
                if k[0] == "gateway_kafka_lag"}
        if sorted(lags) == ["0", "1", "2"] and set(lags.values()) == {0}:
            break
        assert time.monotonic() < deadline, lags
        time.sleep(0.3)
    # Store calls timed: mia's connect asked the store for what waited (a
    # fetch); the histogram is cumulative and ends with its count.
    got = samples(get(gw, "/metrics", KEY)[1])
    fetches = got[("gateway_store_call_seconds_count", frozenset({("op", "fetch")}))]
    assert fetches >= 1
    assert got[("gateway_store_call_seconds_bucket",
                frozenset({("op", "fetch"), ("le", "+Inf")}))] == fetches
    # From Kafka's timestamp to the tab: m2 (and m1 if it came live rather
    # than from the store), well under a second on loopback.
    writes = got[("gateway_delivery_seconds_count", frozenset())]
    assert writes in (1, 2)
    assert got[("gateway_delivery_seconds_bucket", frozenset({("le", "1")}))] == writes
    assert got[("gateway_delivery_seconds_bucket", frozenset({("le", "+Inf")}))] == writes
    assert 0 <= got[("gateway_delivery_seconds_sum", frozenset())] < writes
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
    gw = gateway(api_keys_file=None)
    status, body = get(gw, "/metrics")
    assert (status, json.loads(body)) == (403, {"error": "no API keys configured: see "
                                                         "--api-keys-file"})
    opened = gateway(api_keys_file=None, args=["--ops-open"])
    status, text = get(opened, "/metrics")
    assert status == 200 and samples(text)[("gateway_users_online", frozenset())] == 0


last_headers: dict = {}


def post(gw, path: str, body: bytes, key: str | None = KEY,
         content_type: str = "application/json") -> tuple[int, dict]:
    """POSTs; the answer's headers are left in last_headers."""
    req = urllib.request.Request(gw.http_url(path), data=body, method="POST",
                                 headers={"Content-Type": content_type})
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            last_headers.clear()
            last_headers.update({k.lower(): v for k, v in r.headers.items()})
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        last_headers.clear()
        last_headers.update({k.lower(): v for k, v in e.headers.items()})
        return e.code, json.load(e)


def test_notifications_published_over_http_reach_their_users(gateway, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("backend " + KEY + "\n")
    gw = gateway(args=["--api-keys-file", str(keys), "--publish-max-bytes", "2048"])
    gw.wait_assigned()

    async def scenario():
        async with Tab(gw.ws_url("pam")) as tab:
            # An array: the caller's id kept, a missing one made (UUIDv7).
            status, body = await asyncio.to_thread(post, gw, "/api/notifications", json.dumps(
                [{"id": "p-1", "userId": "pam", "message": "one"},
                 {"userId": "pam", "message": "two", "type": "greeting"}]).encode())
            assert status == 202 and body["ids"][0] == "p-1" and len(body["ids"]) == 2
            await tab.wait_for(2)
            assert tab.ids == body["ids"]
            # NDJSON, one a line.
            status, nd = await asyncio.to_thread(
                post, gw, "/api/notifications",
                b'{"id":"p-3","userId":"pam","message":"three"}\n'
                b'{"id":"p-4","userId":"pam","message":"four"}\n', KEY, "application/x-ndjson")
            assert (status, nd) == (202, {"ids": ["p-3", "p-4"]})
            await tab.wait_for(4)
            # All or nothing: every error listed, nothing sent.
            status, bad = await asyncio.to_thread(post, gw, "/api/notifications", json.dumps(
                [{"id": "p-5", "userId": "pam", "message": "fine"}, {"userId": "pam"},
                 {"id": "p-7", "userId": "no one!", "message": "m"}]).encode())
            assert status == 400
            assert [e["index"] for e in bad["errors"]] == [1, 2]
            assert '"message" is missing' in bad["errors"][0]["error"]
            await tab.quiet_for(1.0)
            assert "p-5" not in tab.ids
    asyncio.run(scenario())
    assert post(gw, "/api/notifications", b'{"userId":"pam","message":"m"}', key=None)[0] == 401
    assert post(gw, "/api/notifications", b'{"userId":"pam","message":"m"}',
                key="not-a-key-0123456789")[0] == 403
    assert post(gw, "/api/notifications", b"[" + b'{"userId":"pam","message":"m"},' * 80 +
                b"{}]")[0] == 413
    assert post(gw, "/api/notifications", b"not json")[0] == 400


def test_http_publishing_in_embedded_mode_is_paced_like_every_producer(gateway, tmp_path):
    """In embedded mode the gateway's own publisher reaches the broker
    through the port producers use, so what it sends counts against the
    same credit as theirs."""
    from servers import free_port
    keys = tmp_path / "keys"
    keys.write_text("backend " + KEY + "\n")
    gw = gateway(topic="notifications", args=["--embedded", "--embedded-port", free_port(),
                                              "--api-keys-file", str(keys)])
    gw.wait_assigned()

    async def scenario():
        async with Tab(gw.ws_url("emb")) as tab:
            batch = [{"id": f"e-{i}", "userId": "emb", "message": "x" * 2000} for i in range(300)]
            for part in (batch[:150], batch[150:]):
                status, body = await asyncio.to_thread(post, gw, "/api/notifications",
                                                       json.dumps(part).encode())
                assert status == 202, body
            await tab.wait_for(300)
            assert tab.ids == [n["id"] for n in batch]
    asyncio.run(scenario())
    assert "lost" not in gw.log_text()


def test_a_publish_kafka_cannot_take_is_503_with_its_ids(gateway, tmp_path):
    from servers import free_port
    keys = tmp_path / "keys"
    keys.write_text("backend " + KEY + "\n")
    gw = gateway(brokers=f"127.0.0.1:{free_port()}",
                 args=["--api-keys-file", str(keys), "--publish-timeout", "2"])
    status, body = post(gw, "/api/notifications",
                        json.dumps({"id": "r-1", "userId": "rob", "message": "m"}).encode())
    assert status == 503 and body["ids"] == ["r-1"] and "same ids" in body["error"]
    assert last_headers["retry-after"] == "5"
    # No keys configured: publishing is closed.
    plain = gateway(api_keys_file=None)
    status, body = post(plain, "/api/notifications", b'{"userId":"u","message":"m"}')
    assert status == 403 and "no API keys configured" in body["error"]


def test_the_seeds_publish_paths_want_a_key_and_a_body(gateway, tmp_path):
    """What they deliver: test_audiences.py."""
    keys = tmp_path / "keys"
    keys.write_text("backend " + KEY + "\n")
    gw = gateway(args=["--api-keys-file", str(keys)])
    assert post(gw, "/publisher", b'{"message":"m"}', key=None)[0] == 401
    status, body = post(gw, "/publisher", b'"not an object"')
    assert status == 400 and "message" in body["error"]
    assert post(gw, "/send-message", b'{"from":"a","to":"b","message":"m"}', key=None)[0] == 401


def test_an_operator_disconnects_a_user_and_what_they_held_is_stored(kafka, mongo, topic,
                                                                    mongo_db_name, gateway,
                                                                    tmp_path):
    import websockets
    keys = tmp_path / "keys"
    keys.write_text("operator " + KEY + "\n")
    gw = gateway(args=["--api-keys-file", str(keys)])
    gw.wait_assigned()

    async def scenario():
        a = await websockets.connect(gw.ws_url("dana"))
        b = await websockets.connect(gw.ws_url("dana"))
        other = await websockets.connect(gw.ws_url("eli"))
        await asyncio.sleep(0.3)
        produce(kafka.bootstrap, topic, [{"id": "held-1", "userId": "dana", "message": "m",
                                          "timestamp": "2026-12-03T12:00:00Z"}])
        json.loads(await a.recv())  # delivered, never acknowledged
        status, body = await asyncio.to_thread(post, gw, "/api/users/dana/disconnect", b"")
        assert (status, body) == (200, {"closed": 2, "otherGateways": 0})
        for ws in (a, b):
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed:
                pass
            assert (ws.close_code, ws.close_reason) == (4003, "disconnected by operator")
        assert other.close_code is None
        await other.close()
    asyncio.run(scenario())
    with mongo.client() as c:
        deadline = time.monotonic() + 10
        while not c[mongo_db_name].notifications.find_one({"id": "held-1"}):
            assert time.monotonic() < deadline, "what the connections held was not stored"
            time.sleep(0.1)
    assert post(gw, "/api/users/dana/disconnect", b"", key=None)[0] == 401
    assert post(gw, "/api/users/nobody/disconnect", b"") == (200, {"closed": 0, "otherGateways": 0})


def receipts(kafka, topic: str, until, timeout: float = 20.0) -> list[dict]:
    """Receipts read from TOPIC until UNTIL(receipts) holds (keys kept)."""
    import uuid
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout
    try:
        while not until(got) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append({**json.loads(m.value()), "key": m.key().decode()})
    finally:
        c.close()
    return got


def test_receipts_say_what_happened_to_each_notification(kafka, topic, gateway):
    """--events-topic: the topic is created (the broker creates none by
    itself), and each notification's delivered, acked, stored or
    dead-lettered arrives there keyed by its user."""
    events = f"{topic}.events"
    gw = gateway(args=["--events-topic", events])
    gw.wait_assigned()

    async def scenario():
        async with Tab(gw.ws_url("rae")) as tab:
            produce(kafka.bootstrap, topic, [{"id": "r1", "userId": "rae", "message": "live"}])
            await tab.wait_for(1)
            await asyncio.sleep(0.3)  # the ack
    asyncio.run(scenario())
    produce(kafka.bootstrap, topic, [{"id": "r2", "userId": "sam", "message": "away"},
                                     ("tom", b"not json")])
    want = {("r1", "rae", "delivered"), ("r1", "rae", "acked"), ("r2", "sam", "stored")}
    got = receipts(kafka, events, lambda g: want <= {(r["id"], r["userId"], r["event"])
                                                     for r in g} and
                   any(r["event"] == "dead-lettered" for r in g))
    seen = {(r["id"], r["userId"], r["event"]) for r in got}
    assert want <= seen, got
    dead = [r for r in got if r["event"] == "dead-lettered"]
    assert len(dead) == 1 and dead[0]["userId"] == "tom" and dead[0]["id"].startswith(topic)
    assert all(r["key"] == r["userId"] for r in got)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["at"]) for r in got)
    # Counted in /metrics.
    text = get(gw, "/metrics", HARNESS_KEY)[1]
    deadline = time.monotonic() + 10
    while samples(text)[("gateway_receipts_sent_total", frozenset())] < 4:
        assert time.monotonic() < deadline, text
        time.sleep(0.5)
        text = get(gw, "/metrics", HARNESS_KEY)[1]
    assert samples(text)[("gateway_receipts_dropped_total", frozenset())] == 0


def test_http_and_the_producer_put_a_user_on_the_same_partition(kafka, topic, gateway, tmp_path):
    """Order holds per user only within a partition: a user's notifications
    published over HTTP and by the producer CLI must land on the same one
    (the one Java and KafkaJS clients choose too: murmur2)."""
    import subprocess
    import uuid
    from confluent_kafka import Consumer
    from conftest import PRODUCER_BIN
    keys = tmp_path / "keys"
    keys.write_text("backend " + KEY + "\n")
    gw = gateway(args=["--api-keys-file", str(keys)])
    users = [f"part-{i}" for i in range(8)]
    status, _ = post(gw, "/api/notifications", json.dumps(
        [{"id": f"http-{u}", "userId": u, "message": "m"} for u in users]).encode())
    assert status == 202
    for u in users:
        cli = subprocess.run([str(PRODUCER_BIN), "--brokers", kafka.bootstrap, "--topic", topic,
                              "--user", u, "--id", f"cli-{u}", "--message", "m"],
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0, cli.stderr
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"p-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    where, deadline = {}, time.monotonic() + 20
    try:
        while len(where) < 2 * len(users) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                where[json.loads(m.value())["id"]] = m.partition()
    finally:
        c.close()
    assert len(where) == 2 * len(users), where
    assert {u: where[f"http-{u}"] for u in users} == {u: where[f"cli-{u}"] for u in users}


def test_mongouri_is_read_for_mongodb_uri_and_the_log_says_so(mongo, gateway):
    """Seed 002's MONGOURI: read when MONGODB_URI is not set, and logged."""
    gw = gateway(mongodb_uri=None, env={"MONGOURI": mongo.uri})
    gw.wait_health("the store answering", lambda h: h["store"] == "ok")
    assert "(from MONGOURI, read as another name for MONGODB_URI)" in gw.log_text()


def test_a_preflight_names_what_a_page_may_send(gateway):
    """OPTIONS on an API route: 204, the headers a page may send, Vary:
    Origin, and Access-Control-Allow-Origin only for an allowed origin."""
    gw = gateway(args=["--allowed-origins", "http://app.example"])
    for origin, allowed in (("http://app.example", True), ("http://evil.example", False)):
        req = urllib.request.Request(gw.http_url("/api/users/u1/notifications"), method="OPTIONS",
                                     headers={"Origin": origin,
                                              "Access-Control-Request-Method": "GET"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
            assert r.headers["Vary"] == "Origin"
            assert r.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)
