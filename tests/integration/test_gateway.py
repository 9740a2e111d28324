"""The gateway end to end: real Kafka, a real MongoDB-wire store
(mongo-java-server), the real daemon, real WebSocket clients. Each test has its own topic, consumer group and database."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import websockets
from confluent_kafka import Producer

from conftest import GATEWAY_BIN, PRODUCER_BIN
from servers import MongoJavaServer, produce
from wsclient import Tab, stalled_tab

PRODUCER = PRODUCER_BIN


def note(nid: str, user: str, message: str | None = None, **extra) -> dict:
    return {"id": nid, "userId": user, "message": message or f"message {nid}",
            "timestamp": "2026-11-25T12:00:00.000Z", **extra}


def stored(mongo, db: str, user: str | None = None) -> list[dict]:
    with mongo.client() as c:
        query = {"userId": user} if user else {}
        return list(c[db].notifications.find(query).sort("seq", 1))


def wait_stored(mongo, db: str, user: str, count: int, timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    docs = []
    while time.monotonic() < deadline:
        docs = stored(mongo, db, user)
        if len(docs) >= count:
            return docs
        time.sleep(0.1)
    raise AssertionError(f"expected {count} stored notifications for {user}, found {len(docs)}")


def wait_store_empty(mongo, db: str, user: str, timeout: float = 10.0) -> None:
    """Until nothing is stored for USER (every notification acknowledged)."""
    deadline = time.monotonic() + timeout
    while stored(mongo, db, user) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored(mongo, db, user) == []


def run(coro):
    return asyncio.run(coro)


def test_online_user_receives_from_the_producer_cli(kafka, topic, gateway):
    gw = gateway()

    async def scenario():
        async with Tab(gw.ws_url("u1")) as tab:
            await asyncio.sleep(0.3)
            out = subprocess.run(
                [str(PRODUCER), "--brokers", kafka.bootstrap, "--topic", topic,
                 "--user", "u1", "--message", "hello there", "--type", "greeting"],
                capture_output=True, text=True, timeout=30, check=True)
            sent_id = out.stdout.strip()
            frames = await tab.wait_for(1)
            assert frames[0]["id"] == sent_id
            assert frames[0]["userId"] == "u1"
            assert frames[0]["message"] == "hello there"
            assert frames[0]["type"] == "greeting"
            assert "replayed" not in frames[0]
    run(scenario())


def test_every_tab_of_a_user_receives_it(kafka, topic, gateway):
    gw = gateway()

    async def scenario():
        async with Tab(gw.ws_url("multi")) as a, Tab(gw.ws_url("multi")) as b, \
                Tab(gw.ws_url("multi"), ack=False) as c:
            await asyncio.sleep(0.3)
            produce(kafka.bootstrap, topic, [note("m1", "multi"), note("m2", "multi")])
            for tab in (a, b, c):
                await tab.wait_for(2)
                assert tab.ids == ["m1", "m2"]
    run(scenario())


def test_a_stalled_tab_does_not_hold_back_the_others(kafka, topic, gateway):
    """Each tab has its own window: with one tab neither reading nor acking,
    the user's healthy tab gets all 400 notifications within 2 s."""
    gw = gateway()
    records = [note(f"st-{i:03d}", "juggler") for i in range(400)]

    async def scenario():
        stalled = stalled_tab(gw.port, "juggler")
        async with Tab(gw.ws_url("juggler")) as tab:
            await asyncio.sleep(0.3)
            started = time.monotonic()
            produce(kafka.bootstrap, topic, records)
            await tab.wait_for(400, timeout=10)
            took = time.monotonic() - started
            assert tab.ids == [r["id"] for r in records]
            print(f"healthy tab: 400 notifications in {took:.2f} s beside a stalled one")
            assert took < 2.0
        stalled.close()
    run(scenario())


def test_large_and_many_notifications_arrive_whole_and_in_order(kafka, topic, gateway):
    """Frames of every header size, many written to a connection at once."""
    gw = gateway()
    sizes = [10, 125, 126, 4000, 20000, 60000] + [300] * 500
    records = [note(f"big-{i:04d}", "bulky", "x" * size) for i, size in enumerate(sizes)]

    async def scenario():
        async with Tab(gw.ws_url("bulky")) as tab:
            await asyncio.sleep(0.3)
            produce(kafka.bootstrap, topic, records)
            frames = await tab.wait_for(len(records), timeout=30)
            assert tab.ids == [r["id"] for r in records]
            assert [len(f["message"]) for f in frames] == sizes
    run(scenario())


def test_one_id_sent_to_many_offline_users_reaches_each(kafka, mongo, topic, mongo_db_name,
                                                       gateway):
    """Ids are unique per user: a campaign id for several offline users is
    stored once for each of them, and each gets theirs on connect."""
    gw = gateway()
    users = [f"camp-{i}" for i in range(5)]
    produce(kafka.bootstrap, topic, [note("campaign-7", u, f"hello {u}") for u in users])
    for u in users:
        assert [d["id"] for d in wait_stored(mongo, mongo_db_name, u, 1)] == ["campaign-7"]

    async def scenario():
        for u in users:
            async with Tab(gw.ws_url(u)) as tab:
                frames = await tab.wait_for(1)
                assert frames[0]["message"] == f"hello {u}" and frames[0]["userId"] == u
    run(scenario())
    for u in users:  # each acknowledged theirs: deleted for them alone
        wait_store_empty(mongo, mongo_db_name, u)


def test_what_waits_for_an_absent_user_is_bounded(kafka, mongo, topic, mongo_db_name, gateway):
    """--max-pending-per-user keeps a user's newest, --pending-retention
    expires the old; each expiry is counted in the log (the limits are
    applied when the store is ready and every minute after)."""
    gw = gateway(args=["--max-pending-per-user", "10", "--pending-retention", "3"])
    ids = [f"cap-{i:02d}" for i in range(30)]
    produce(kafka.bootstrap, topic, [note(i, "hoarder") for i in ids])
    wait_stored(mongo, mongo_db_name, "hoarder", 30)
    gw.restart()
    deadline = time.monotonic() + 10
    while len(stored(mongo, mongo_db_name, "hoarder")) != 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [d["id"] for d in stored(mongo, mongo_db_name, "hoarder")] == ids[20:]
    assert "expired the 20 oldest pending notifications of user hoarder" in gw.log_text()
    time.sleep(3.5)  # older than the retention now
    gw.restart()
    wait_store_empty(mongo, mongo_db_name, "hoarder")
    assert "expired 10 pending notifications in all" in gw.log_text()


def test_offline_notifications_are_stored_and_flushed_oldest_first(kafka, mongo, topic,
                                                                   mongo_db_name, gateway):
    gw = gateway()
    ids = [f"off-{i:03d}" for i in range(300)]
    produce(kafka.bootstrap, topic, [note(i, "sleeper") for i in ids])
    docs = wait_stored(mongo, mongo_db_name, "sleeper", len(ids))
    assert [d["id"] for d in docs] == ids
    assert all(d["userId"] == "sleeper" for d in docs)

    async def scenario():
        async with Tab(gw.ws_url("sleeper")) as tab:
            frames = await tab.wait_for(len(ids))
            assert tab.ids == ids  # oldest first, in several batches
            assert all(f.get("replayed") is True for f in frames)
            # Newer live notifications come after the stored ones.
            produce(kafka.bootstrap, topic, [note("live-1", "sleeper")])
            await tab.wait_for(len(ids) + 1)
            assert tab.ids[-1] == "live-1"
    run(scenario())
    # Every one was acknowledged: the store is empty.
    wait_store_empty(mongo, mongo_db_name, "sleeper")


def test_no_ack_means_redelivery_and_ack_deletes(kafka, mongo, topic, mongo_db_name, gateway):
    gw = gateway()
    produce(kafka.bootstrap, topic, [note("r1", "forgetful"), note("r2", "forgetful")])
    wait_stored(mongo, mongo_db_name, "forgetful", 2)

    async def scenario():
        async with Tab(gw.ws_url("forgetful"), ack=False) as tab:
            await tab.wait_for(2)
        # Not acknowledged: still stored, delivered again on the next connect.
        assert len(stored(mongo, mongo_db_name, "forgetful")) == 2
        async with Tab(gw.ws_url("forgetful"), ack=False) as tab:
            await tab.wait_for(2)
            assert tab.ids == ["r1", "r2"]
            await tab.send_ack("r1")
            await asyncio.sleep(1.0)
        left = [d["id"] for d in stored(mongo, mongo_db_name, "forgetful")]
        assert left == ["r2"]
    run(scenario())


def test_live_notification_not_acked_is_stored_when_the_tab_closes(kafka, mongo, topic,
                                                                  mongo_db_name, gateway):
    gw = gateway()

    async def scenario():
        async with Tab(gw.ws_url("closer"), ack=False) as tab:
            await asyncio.sleep(0.3)
            produce(kafka.bootstrap, topic, [note("c1", "closer")])
            await tab.wait_for(1)
            assert "replayed" not in tab.frames[0]
        docs = wait_stored(mongo, mongo_db_name, "closer", 1)
        assert docs[0]["id"] == "c1"
        async with Tab(gw.ws_url("closer")) as tab:
            frames = await tab.wait_for(1)
            assert frames[0]["id"] == "c1" and frames[0]["replayed"] is True
    run(scenario())


def test_unacknowledged_past_the_timeout_is_stored(kafka, mongo, topic, mongo_db_name, gateway):
    gw = gateway(args=["--ack-timeout", "1"])

    async def scenario():
        async with Tab(gw.ws_url("slowpoke"), ack=False) as tab:
            await asyncio.sleep(0.3)
            produce(kafka.bootstrap, topic, [note("s1", "slowpoke")])
            await tab.wait_for(1)
            docs = wait_stored(mongo, mongo_db_name, "slowpoke", 1, timeout=10)
            assert docs[0]["id"] == "s1"
            # Sent again from the store on the same connection; acked this time.
            await tab.wait_for(2)
            assert tab.frames[1]["id"] == "s1" and tab.frames[1]["replayed"] is True
            await tab.send_ack("s1")
            await asyncio.to_thread(wait_store_empty, mongo, mongo_db_name, "slowpoke")
    run(scenario())


def test_original_ack_forms_are_accepted(kafka, mongo, topic, mongo_db_name, gateway):
    gw = gateway()
    produce(kafka.bootstrap, topic, [note("o1", "legacy"), note("o2", "legacy")])
    wait_stored(mongo, mongo_db_name, "legacy", 2)

    async def scenario():
        async with Tab(gw.ws_url("legacy"), ack=False) as tab:
            await tab.wait_for(2)
            await tab.ws.send(json.dumps({"type": "ack", "userId": "legacy", "messageId": "o1"}))
            await tab.ws.send(json.dumps({"type": "ack", "contentId": "o2"}))
            await asyncio.sleep(1.0)
    run(scenario())
    assert stored(mongo, mongo_db_name, "legacy") == []


def test_long_and_fragmented_acks_are_joined(kafka, mongo, topic, mongo_db_name, gateway):
    """An ack longer than one read, and one sent as several WebSocket fragments."""
    gw = gateway()
    produce(kafka.bootstrap, topic, [note("l1", "verbose"), note("l2", "verbose")])
    wait_stored(mongo, mongo_db_name, "verbose", 2)

    async def scenario():
        async with Tab(gw.ws_url("verbose"), ack=False) as tab:
            await tab.wait_for(2)
            await tab.ws.send('{"type":"ack",' + " " * 3000 + '"id":"l1"}')
            await tab.ws.send(iter(['{"type":"ack",', '"id":', '"l2"}']))
            await asyncio.to_thread(wait_store_empty, mongo, mongo_db_name, "verbose")
    run(scenario())


def test_no_user_sees_or_acks_another_users_notifications(kafka, mongo, topic, mongo_db_name,
                                                          gateway):
    gw = gateway()
    produce(kafka.bootstrap, topic, [note("secret-1", "alice")])
    wait_stored(mongo, mongo_db_name, "alice", 1)

    async def scenario():
        async with Tab(gw.ws_url("alice"), ack=False) as alice, Tab(gw.ws_url("mallory")) as mal:
            await alice.wait_for(1)
            # mallory tries to acknowledge alice's stored notification away.
            await mal.send_ack("secret-1")
            await mal.ws.send(json.dumps({"type": "ack", "userId": "alice", "messageId": "secret-1"}))
            produce(kafka.bootstrap, topic, [note("secret-2", "alice"), note("hers", "mallory")])
            await mal.wait_for(1)
            await alice.wait_for(2)
            await mal.quiet_for(0.5)
            assert mal.ids == ["hers"]
            assert alice.ids == ["secret-1", "secret-2"]
        # Also through user_id, the other spelling of the query.
        async with Tab(gw.ws_url("mallory").replace("userId=", "user_id=")) as mal2:
            await mal2.quiet_for(0.5)
    run(scenario())
    assert [d["id"] for d in stored(mongo, mongo_db_name, "alice")] == ["secret-1", "secret-2"]


def dead_letters(kafka, topic: str, count: int, timeout: float = 20.0) -> list:
    """The first COUNT records of TOPIC's dead-letter topic."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"dlq-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([f"{topic}.dlq"])
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
    finally:
        c.close()
    assert len(got) == count, f"{len(got)} of {count} dead letters"
    return got


def committed(kafka, group: str, topic: str) -> dict:
    from confluent_kafka import ConsumerGroupTopicPartitions
    res = kafka.admin().list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    parts = res[group].result(10).topic_partitions
    return {tp.partition: tp.offset for tp in parts if tp.topic == topic}


def test_records_that_are_not_notifications_go_to_the_dead_letter_topic(kafka, topic, gateway,
                                                                         gateway_group):
    """Seed 001 dead-letters what fails validation: nothing is dropped. The
    gateway creates <topic>.dlq (the broker creates no topic by itself),
    writes each bad record there with its key, value and headers and why,
    and only then lets its offset be committed."""
    gw = gateway()
    bad = [
        ("ghost", b"this is not json"),
        ("ghost", json.dumps({"id": "x", "message": "no user"}).encode()),
        ("ghost", json.dumps({"id": "y", "userId": "ghost"}).encode()),
        ("ghost", json.dumps({"id": "z", "userId": "bad user!", "message": "m"}).encode()),
        ("ghost", json.dumps({"id": "w", "userId": "ghost", "message": "m",
                              "type": "welcome"}).encode()),
    ]

    async def scenario():
        async with Tab(gw.ws_url("ghost")) as tab:
            await asyncio.sleep(0.3)
            # Same key: same partition, the good one after the bad ones.
            produce(kafka.bootstrap, topic, bad + [("ghost", json.dumps(note("good", "ghost")).encode())])
            await tab.wait_for(1)
            assert tab.ids == ["good"]
    run(scenario())
    letters = dead_letters(kafka, topic, len(bad))
    assert [m.value() for m in letters] == [v for _, v in bad]
    assert all(m.key() == b"ghost" for m in letters)
    headers = [dict((k, v.decode()) for k, v in m.headers()) for m in letters]
    assert all(h["dlq.topic"] == topic for h in headers)
    assert [h["dlq.offset"] for h in headers] == [str(i) for i in range(len(bad))]
    assert "not valid JSON" in headers[0]["dlq.error"]
    assert '"userId" is missing' in headers[1]["dlq.error"]
    assert '"message" is missing' in headers[2]["dlq.error"]
    assert "reserved" in headers[4]["dlq.error"]
    gw.wait_health("dead letters counted", lambda h: h["deadLettered"] == len(bad))
    assert gw.log_text().count("dead-lettering the message at") == len(bad)
    assert "created the dead-letter topic" in gw.log_text()
    # Everything done: the group commits past all six.
    deadline = time.monotonic() + 15
    while sum(o for o in committed(kafka, gateway_group, topic).values() if o > 0) < len(bad) + 1:
        assert time.monotonic() < deadline, committed(kafka, gateway_group, topic)
        time.sleep(0.3)


def test_connection_without_a_user_is_refused_with_a_reason(gateway):
    gw = gateway()

    async def scenario():
        for url in (f"ws://127.0.0.1:{gw.port}/", f"ws://127.0.0.1:{gw.port}/?userId=",
                    f"ws://127.0.0.1:{gw.port}/?userId=bad%20user"):
            async with websockets.connect(url) as ws:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 1008
                assert "user" in closed.value.rcvd.reason.lower()
    run(scenario())


def test_oversized_and_invalid_client_frames_close_the_connection(gateway):
    gw = gateway()

    async def scenario():
        async with websockets.connect(gw.ws_url("big")) as ws:
            await ws.send("x" * 10000)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 1009
        async with websockets.connect(gw.ws_url("garbled")) as ws:
            await ws.send("ack please")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 1007
            assert "JSON" in closed.value.rcvd.reason
    run(scenario())
    assert gw.healthz() == 200


def test_http_serves_the_page_and_health(gateway):
    gw = gateway()
    with urllib.request.urlopen(gw.http_url("/"), timeout=5) as r:
        assert r.status == 200
        assert b"<html" in r.read().lower()
    h = gw.health()
    assert h["status"] == "ok" and h["connections"] == 0
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(gw.http_url("/no-such-page"), timeout=5)
    assert missing.value.code == 404
    # Routes: a query string is ignored, a longer path is not the route, and
    # a known path with another method says so.
    # /healthz is liveness alone; the rest is /status.json's, for operators.
    with urllib.request.urlopen(gw.http_url("/healthz?verbose=1"), timeout=5) as r:
        assert json.loads(r.read()) == {"status": "ok"}
    with urllib.request.urlopen(gw.http_url("/health"), timeout=5) as r:  # the seeds' name
        assert json.loads(r.read()) == {"status": "ok"}
    with pytest.raises(urllib.error.HTTPError) as closed:
        urllib.request.urlopen(gw.http_url("/status.json"), timeout=5)
    assert closed.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(gw.http_url("/healthz/more"), timeout=5)
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(urllib.request.Request(gw.http_url("/healthz"), data=b"{}",
                                                      method="POST"), timeout=5)
    assert wrong.value.code == 405
    assert "not allowed" in json.loads(wrong.value.read())["error"]
    # Keep-alive: two requests on one connection are both answered; HEAD is
    # answered as GET, without the body.
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    for method in ("GET", "HEAD", "GET"):
        conn.request(method, "/healthz")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200
        assert body == b"" if method == "HEAD" else json.loads(body)["status"] == "ok"
    conn.close()
    # HTTP/2 over cleartext is refused: only HTTP/1.1 and WebSocket upgrades.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        reply = s.recv(4096)
        assert b"101" not in reply.split(b"\r\n")[0]


def readyz(gw) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(gw.http_url("/readyz"), timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_ready_in_the_group_with_or_without_partitions(kafka, gateway, request):
    """Two gateways on a one-partition topic: both are ready, the one that
    holds no partition too (it is in the group, mid-rebalance or not)."""
    one = kafka.create_topic(f"t1-{request.node.name[-20:]}", partitions=1)
    a, b = gateway(topic=one), gateway(topic=one)
    for gw in (a, b):
        deadline = time.monotonic() + 30
        while readyz(gw)[0] != 200:
            assert time.monotonic() < deadline, readyz(gw)
            time.sleep(0.2)
        assert readyz(gw) == (200, {"ready": True})
        # Ready means it knows who holds which user too (docs/adr/0001).
        assert gw.health()["cluster"]["ready"]
    assert sorted(gw.health()["partitions"] for gw in (a, b)) == [0, 1]


def test_health_says_what_is_down(gateway, tmp_path):
    """With no broker and no store answering, /healthz says which (and the
    gateway keeps serving); once the store comes up, it says so."""
    from servers import MongoJavaServer, free_port
    store_port = free_port()
    gw = gateway(brokers=f"127.0.0.1:{free_port()}",
                 mongodb_uri=f"mongodb://127.0.0.1:{store_port}/", args=["--store-timeout", "2"])
    deadline = time.monotonic() + 20
    h = gw.health()
    while (h["kafka"], h["store"]) != ("unreachable", "failing") and time.monotonic() < deadline:
        time.sleep(0.2)
        h = gw.health()
    assert h["status"] == "degraded" and h["kafka"] == "unreachable" and h["store"] == "failing"
    assert h["storeFailures"] >= 1
    # Not ready, and why: a load balancer sends no one here.
    assert readyz(gw) == (503, {"ready": False,
                                "reasons": ["kafka unreachable", "store failing"]})
    db = MongoJavaServer().start(tmp_path / "store", port=store_port)
    try:
        deadline = time.monotonic() + 20
        while gw.health()["store"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.2)
        h = gw.health()
        assert h["store"] == "ok" and h["kafka"] == "unreachable" and h["status"] == "degraded"
    finally:
        db.stop()


def test_sigterm_stores_in_flight_commits_and_exits_zero(kafka, mongo, topic, mongo_db_name,
                                                         gateway):
    gw = gateway()

    async def scenario():
        async with Tab(gw.ws_url("holder"), ack=False) as tab:
            await asyncio.sleep(0.3)
            produce(kafka.bootstrap, topic, [note("h1", "holder"), note("h2", "holder")])
            await tab.wait_for(2)
            started = time.monotonic()
            assert gw.stop(timeout=10) == 0
            assert time.monotonic() - started < 5
            await tab.close()
            assert tab.ws.close_code == 1001  # told it is going away
    run(scenario())
    assert [d["id"] for d in stored(mongo, mongo_db_name, "holder")] == ["h1", "h2"]
    # Everything was stored, so everything was committed: a restart
    # redelivers nothing from Kafka, only the stored copies on connect.
    gw.restart()

    async def again():
        async with Tab(gw.ws_url("holder")) as tab:
            await tab.wait_for(2)
            await tab.quiet_for(1.5)
            assert tab.ids == ["h1", "h2"]
            assert all(f.get("replayed") for f in tab.frames)
    run(again())


def test_a_connection_opened_while_draining_is_told_to_try_again_later(kafka, topic, gateway,
                                                                        mongo_db_name, tmp_path):
    """While a stopping gateway drains (here: what a tab held goes to a
    store that is frozen), a new connection is refused with 1013, so that
    the client goes to another gateway or retries rather than joining one
    that is leaving; once the store answers, the drain ends and nothing is
    lost."""
    store = MongoJavaServer().start(tmp_path / "store")
    try:
        gw = gateway(mongodb_uri=store.uri, args=["--shutdown-timeout", "20"])

        async def scenario():
            async with Tab(gw.ws_url("holder"), ack=False) as tab:
                await asyncio.sleep(0.3)
                produce(kafka.bootstrap, topic, [note("d1", "holder")])
                await tab.wait_for(1)
                os.kill(store.proc.pid, signal.SIGSTOP)
                try:
                    os.kill(gw.pid, signal.SIGTERM)
                    await asyncio.sleep(0.5)
                    assert gw.running, "the drain waits for the store"
                    async with websockets.connect(gw.ws_url("late")) as ws:
                        with pytest.raises(websockets.ConnectionClosed):
                            await asyncio.wait_for(ws.recv(), 5)
                        assert (ws.close_code, ws.close_reason) == (
                            1013, "server draining, try again later")
                finally:
                    os.kill(store.proc.pid, signal.SIGCONT)
        run(scenario())
        assert gw.stop(timeout=20) == 0
        assert [d["id"] for d in stored(store, mongo_db_name, "holder")] == ["d1"]
    finally:
        store.stop()


def test_sigkill_under_traffic_loses_nothing(kafka, mongo, topic, mongo_db_name, gateway):
    """Kill the daemon with SIGKILL while notifications flow to online and
    offline users, restart it, and check that every notification reaches
    its user (duplicates allowed: they carry the same id)."""
    gw = gateway()
    gw.wait_assigned()
    users = [f"k{i}" for i in range(10)]
    online = users[:5]
    total = 3000
    records = [note(f"kill-{n:05d}", users[n % len(users)]) for n in range(total)]
    expected = {u: {r["id"] for r in records if r["userId"] == u} for u in users}
    got: dict[str, set] = {u: set() for u in users}

    async def collect(tab_list):
        for t in tab_list:
            for f in t.frames:
                assert f["userId"] == t.url.split("userId=")[1]
                got[f["userId"]].add(f["id"])

    async def phase_one():
        tabs = [Tab(gw.ws_url(u)) for u in online]
        for t in tabs:
            await t.__aenter__()
        await asyncio.sleep(0.3)
        def paced():
            # About 3 s of traffic, so the kill lands in the middle of it.
            p = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True,
                          "linger.ms": 0})
            failures = []
            for r in records:
                p.produce(topic, json.dumps(r).encode(), r["userId"].encode(),
                          on_delivery=lambda err, msg: err and failures.append(err))
                p.poll(0)
                time.sleep(0.001)
            assert p.flush(30) == 0 and not failures, failures

        producer = asyncio.get_running_loop().run_in_executor(None, paced)
        while sum(len(t.frames) for t in tabs) < 100:
            await asyncio.sleep(0.05)
        assert gw.kill() == -9
        await producer
        for t in tabs:
            await t.close()
        await collect(tabs)
        delivered = sum(len(got[u]) for u in online)
        sent_online = sum(len(expected[u]) for u in online)
        assert 0 < delivered < sent_online, "the kill did not land mid-traffic"

    run(phase_one())
    gw.start()

    async def phase_two():
        tabs = [Tab(gw.ws_url(u)) for u in users]
        for t in tabs:
            await t.__aenter__()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await collect(tabs)
            if all(expected[u] <= got[u] for u in users):
                break
            await asyncio.sleep(0.5)
        for t in tabs:
            await t.close()
        await collect(tabs)

    run(phase_two())
    missing = {u: sorted(expected[u] - got[u])[:5] for u in users if expected[u] - got[u]}
    assert not missing, f"lost notifications: {missing}"


@pytest.mark.parametrize("prop", ["enable.auto.commit=false", "enable.auto.offset.store=true"])
def test_settings_that_would_lose_notifications_are_refused(gateway, prop):
    gw = gateway(args=["-X", prop], wait=False)
    deadline = time.monotonic() + 15
    while gw.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gw.returncode not in (None, 0)
    assert "the gateway sets" in gw.log_text()


def test_bad_settings_get_a_clear_error():
    from conftest import GATEWAY_BIN
    for args, says in ((["--port", "http"], "--port"), (["--window", "0"], "--window"),
                       (["--store", "redis://x"], "unknown store"), (["--nope"], "--help"),
                       (["--log-level", "loud"], "log level")):
        run_ = subprocess.run([str(GATEWAY_BIN), *args], capture_output=True, text=True, timeout=30)
        assert run_.returncode != 0, args
        assert says in run_.stderr, (args, run_.stderr)


def test_a_dead_letter_topic_the_broker_will_not_create_stops_the_gateway_naming_it(gateway):
    gw = gateway(args=["--dlq-topic", "no spaces allowed"], wait=False)
    assert gw.proc.wait(timeout=30) == 1
    log = gw.log_text()
    assert "cannot go on: the dead-letter topic no spaces allowed" in log, log[-2000:]


def test_a_dead_letter_outage_holds_the_partition_and_drops_nothing(kafka, topic, gateway,
                                                                   gateway_group):
    """The dead-letter topic deleted under the gateway: the bad record waits
    (its partition's offset is not committed past it, later notifications
    still arrive live), and once the topic is back it is written there and
    the offset moves on."""
    from confluent_kafka.admin import NewTopic
    gw = gateway()
    gw.wait_assigned()
    admin = kafka.admin()
    admin.delete_topics([f"{topic}.dlq"])[f"{topic}.dlq"].result(30)
    deadline = time.monotonic() + 30
    while f"{topic}.dlq" in admin.list_topics(timeout=5).topics:
        assert time.monotonic() < deadline
        time.sleep(0.2)

    async def scenario():
        async with Tab(gw.ws_url("held")) as tab:
            await asyncio.sleep(0.3)
            produce(kafka.bootstrap, topic, [("held", b"not json"),
                                             ("held", json.dumps(note("after", "held")).encode())])
            await tab.wait_for(1)
            assert tab.ids == ["after"]
            await asyncio.sleep(3)  # commits every second: none may pass the bad record
            assert sum(o for o in committed(kafka, gateway_group, topic).values() if o > 0) == 0
    run(scenario())
    kafka.create_topic(f"{topic}.dlq", partitions=3)
    letters = dead_letters(kafka, topic, 1, timeout=30)
    assert letters[0].value() == b"not json"
    deadline = time.monotonic() + 15
    while sum(o for o in committed(kafka, gateway_group, topic).values() if o > 0) < 2:
        assert time.monotonic() < deadline, committed(kafka, gateway_group, topic)
        time.sleep(0.3)


def test_json_logs_are_one_object_a_line_and_old_names_are_read(kafka, topic, gateway):
    """--log-format json: every line the gateway writes parses, librdkafka's
    and a dead letter's included; KAFKA_BROKER (seed 002's name) is read
    for KAFKA_BROKERS, and the log says so."""
    gw = gateway(brokers=None, env={"KAFKA_BROKER": kafka.bootstrap},
                 args=["--log-format", "json"])
    gw.wait_assigned()
    produce(kafka.bootstrap, topic, [("j", b"not json"), ("j", json.dumps(note("j1", "j")).encode())])

    async def scenario():
        async with Tab(gw.ws_url("j")) as tab:
            await tab.wait_for(1)
    run(scenario())
    gw.wait_health("the dead letter written", lambda h: h["deadLettered"] == 1)
    # libmongoc's counters file is never made: where /dev/shm refuses it,
    # its warning came before the log format existed, and a killed
    # gateway left the file behind.
    assert not os.path.exists(f"/dev/shm/mongoc-{gw.pid}")
    assert gw.stop() == 0
    lines = [l for l in gw.log_text().splitlines() if l.strip()]
    records = [json.loads(l) for l in lines]  # every line, or this raises
    assert all(set(r) == {"time", "level", "msg"} for r in records)
    msgs = [r["msg"] for r in records]
    assert any("read as another name for KAFKA_BROKERS" in m for m in msgs)
    assert any(m.startswith("dead-lettering the message") and "not valid JSON" in m for m in msgs)
    assert records[-1]["msg"] == "stopped"
    # A bad setting is reported in the same form.
    bad = subprocess.run([str(GATEWAY_BIN), "--log-format", "json", "--port", "0"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2
    assert [json.loads(l)["level"] for l in bad.stderr.splitlines()] == ["error"]


def test_an_idle_gateway_notices_its_store_going_away(gateway, tmp_path):
    """Nothing calls the store while nobody is away: the gateway still asks
    it every few seconds, so /readyz stops saying ready when it goes, and
    says so again when it is back. (Before, an idle gateway stayed ready
    with its store stopped: a container health check found it.)"""
    from servers import MongoJavaServer, free_port
    port = free_port()
    db = MongoJavaServer().start(tmp_path / "store", port=port)
    try:
        gw = gateway(mongodb_uri=f"mongodb://127.0.0.1:{port}/", args=["--store-timeout", "2"])
        deadline = time.monotonic() + 30
        while readyz(gw)[0] != 200:
            assert time.monotonic() < deadline, readyz(gw)
            time.sleep(0.2)
        db.stop()
        deadline = time.monotonic() + 20
        while readyz(gw)[0] != 503:
            assert time.monotonic() < deadline, "still ready with the store stopped"
            time.sleep(0.2)
        assert readyz(gw) == (503, {"ready": False, "reasons": ["store failing"]})
        db = MongoJavaServer().start(tmp_path / "store2", port=port)
        deadline = time.monotonic() + 20
        while readyz(gw)[0] != 200:
            assert time.monotonic() < deadline, readyz(gw)
            time.sleep(0.2)
    finally:
        db.stop()
