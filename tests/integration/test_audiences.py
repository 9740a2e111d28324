"""Audiences beyond one user, expiry, and the producers' forms of them:
real Kafka, a real MongoDB-wire store (mongo-java-server), the real
gateway, producer CLI and HTTP API, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import PRODUCER_BIN, HARNESS_KEY
from servers import produce
from wsclient import Tab, recv_frames
from test_gateway import stored, wait_stored


def run(coro):
    return asyncio.run(coro)


def producer(kafka, topic, *args) -> str:
    out = subprocess.run([str(PRODUCER_BIN), "--brokers", kafka.bootstrap, "--topic", topic,
                          *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def post(gw, path: str, body) -> tuple[int, dict]:
    req = urllib.request.Request(gw.http_url(path), data=json.dumps(body).encode(),
                                 method="POST", headers={"Authorization": f"Bearer {HARNESS_KEY}",
                                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def keys_of(kafka, topic: str, count: int, timeout: float = 15.0) -> list[tuple[bytes, dict]]:
    """The first COUNT records of TOPIC as (key, value)."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"k-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.key(), json.loads(m.value())))
    finally:
        c.close()
    assert len(got) == count, f"{len(got)} of {count} records"
    return got


def test_user_ids_reach_each_user_and_the_record_completes_with_its_last_copy(
        kafka, mongo, topic, mongo_db_name, gateway):
    """One record naming three users: a personal copy each (online, two
    tabs, offline), each frame its user's alone; the record's offset waits
    for the last copy's ack."""
    gw = gateway()

    async def scenario():
        async with Tab(gw.ws_url("ua")) as a1, Tab(gw.ws_url("ua")) as a2, \
                Tab(gw.ws_url("uc"), ack=False) as c:
            await asyncio.sleep(0.3)
            nid = producer(kafka, topic, "--user-ids", "ua,ub,uc", "--message", "to three")
            for tab, user in ((a1, "ua"), (a2, "ua"), (c, "uc")):
                frames = await tab.wait_for(1)
                assert frames[0]["id"] == nid and frames[0]["userId"] == user
                assert "userIds" not in frames[0]
            assert [d["id"] for d in wait_stored(mongo, mongo_db_name, "ub", 1)] == [nid]
            # ua acked and ub is stored; uc's copy still holds the record.
            await asyncio.sleep(0.5)
            assert gw.health()["kafkaPending"] == 1
            await c.send_ack(nid)
            gw.wait_health("the record complete", lambda h: h["kafkaPending"] == 0)
        async with Tab(gw.ws_url("ub")) as b:
            frames = await b.wait_for(1)
            assert frames[0]["id"] == nid and frames[0]["userId"] == "ub"
    run(scenario())


def test_each_audience_has_its_kafka_key_from_every_producer(kafka, topic, gateway):
    """A user's notifications share a partition by their user id, a room's
    by room:<name>, broadcast's by one fixed key; userIds, fanned out at
    intake, by the notification's id."""
    gw = gateway()
    producer(kafka, topic, "--user", "ku", "-m", "1")
    producer(kafka, topic, "--user-ids", "k1,k2", "--id", "kid-1", "-m", "2")
    producer(kafka, topic, "--room", "ops.eu", "-m", "3")
    producer(kafka, topic, "--broadcast", "-m", "4", "--ttl", "60")
    status, body = post(gw, "/api/notifications",
                        [{"userId": "ku", "message": "5"},
                         {"id": "kid-2", "userIds": ["k1", "k2"], "message": "6"}])
    assert status == 202, body
    got = keys_of(kafka, topic, 6)
    by_message = {v["message"]: (k, v) for k, v in got}
    assert by_message["1"][0] == b"ku"
    assert by_message["2"][0] == b"kid-1" and by_message["2"][1]["userIds"] == ["k1", "k2"]
    assert by_message["3"][0] == b"room:ops.eu" and by_message["3"][1]["room"] == "ops.eu"
    assert by_message["4"][0] == b"broadcast" and by_message["4"][1]["broadcast"] is True
    assert "expiresAt" in by_message["4"][1]
    assert by_message["5"][0] == b"ku"
    assert by_message["6"][0] == b"kid-2"


def test_more_user_ids_than_the_limit_are_refused(kafka, topic, gateway):
    gw = gateway(args=["--max-user-ids", "2"])
    status, body = post(gw, "/api/notifications",
                        {"userIds": ["l1", "l2", "l3"], "message": "too many"})
    assert status == 400 and "MAX_USER_IDS (2)" in body["errors"][0]["error"]
    # On Kafka directly: dead-lettered with the reason.
    produce(kafka.bootstrap, topic, [("x", json.dumps({"id": "big", "userIds": ["l1", "l2", "l3"],
                                                       "message": "m"}).encode())])
    gw.wait_health("dead-lettered", lambda h: h["deadLettered"] == 1)
    assert "more than --max-user-ids (2)" in gw.log_text()


def test_what_expired_before_it_was_consumed_is_neither_pushed_nor_stored(
        kafka, mongo, topic, mongo_db_name, gateway):
    gw = gateway()

    async def scenario():
        async with Tab(gw.ws_url("ex-on")) as tab:
            await asyncio.sleep(0.3)
            past = "2020-01-01T00:00:00Z"
            produce(kafka.bootstrap, topic, [
                {"id": "old-1", "userId": "ex-on", "message": "m", "expiresAt": past},
                {"id": "old-2", "userId": "ex-off", "message": "m", "expiresAt": past},
                {"id": "old-3", "userIds": ["ex-on", "ex-off"], "message": "m",
                 "timestamp": "2020-01-01T00:00:00Z", "ttl": 60},
                {"id": "fresh", "userId": "ex-on", "message": "m", "ttl": 600}])
            frames = await tab.wait_for(1)
            assert frames[0]["id"] == "fresh" and "expiresAt" in frames[0]
            await tab.quiet_for(0.5)
            assert tab.ids == ["fresh"]
    run(scenario())
    gw.wait_health("three expired, all complete",
                   lambda h: h["expired"] == 3 and h["kafkaPending"] == 0)
    assert stored(mongo, mongo_db_name, "ex-off") == []


def test_the_seeds_send_message_delivers_with_its_sender(kafka, topic, gateway):
    """Seed 001's POST /send-message {"from","to","message"}."""
    gw = gateway()

    async def scenario():
        async with Tab(gw.ws_url("clientB")) as tab:
            await asyncio.sleep(0.3)
            status, body = await asyncio.to_thread(
                post, gw, "/send-message", {"from": "clientA", "to": "clientB",
                                            "message": "Hi there!"})
            assert status == 202, body
            frames = await tab.wait_for(1)
            assert frames[0]["id"] == body["ids"][0]
            assert (frames[0]["from"], frames[0]["userId"], frames[0]["message"]) == \
                ("clientA", "clientB", "Hi there!")
    run(scenario())
    status, body = post(gw, "/send-message", {"from": "a", "message": "no to"})
    assert status == 400 and '"to"' in body["error"]


def test_a_stored_notification_that_expires_is_not_replayed_and_is_swept(
        kafka, mongo, topic, mongo_db_name, gateway):
    """Stored for an absent user with a ttl: once it has passed, a connect
    gets nothing, the inbox lists nothing, and the sweep (at start, then
    every minute) deletes it, counted."""
    gw = gateway()
    produce(kafka.bootstrap, topic, [
        {"id": "short", "userId": "away", "message": "m", "ttl": 2},
        {"id": "long", "userId": "away", "message": "m", "ttl": 3600}])
    docs = wait_stored(mongo, mongo_db_name, "away", 2)
    assert "expiresAt" in docs[0] and "expiresAt" in docs[1]
    time.sleep(2.5)

    async def scenario():
        async with Tab(gw.ws_url("away")) as tab:
            await tab.wait_for(1)
            await tab.quiet_for(0.5)
            assert tab.ids == ["long"]
    run(scenario())
    assert [d["id"] for d in stored(mongo, mongo_db_name, "away")] == ["short"]
    gw.restart()
    gw.wait_health("the sweep", lambda h: h["expired"] == 1)
    assert stored(mongo, mongo_db_name, "away") == []


def test_an_ack_in_one_tab_is_the_read_mark_for_every_tab(kafka, topic, gateway):
    """The first ack of an id from any tab releases it everywhere: the
    user's other v2 tabs are told {"type":"acked"}, an original-protocol
    tab is not (it only reads notifications), a late ack is ignored, and a
    tab that connects later never gets it."""
    import websockets
    gw = gateway()
    v2 = gw.ws_url("reader") + "&v=2"

    async def scenario():
        async with websockets.connect(v2) as a, websockets.connect(v2) as b, \
                websockets.connect(gw.ws_url("reader")) as old:
            for ws in (a, b):  # v2: told it is in first
                assert await recv_frames(ws, 1) == [{"type": "welcome", "userId": "reader"}]
            produce(kafka.bootstrap, topic, [{"id": "rd-1", "userId": "reader", "message": "m"}])
            for ws in (a, b, old):
                assert (await recv_frames(ws, 1))[0]["id"] == "rd-1"
            await a.send(json.dumps({"type": "ack", "id": "rd-1"}))
            assert await recv_frames(b, 1) == [{"type": "acked", "id": "rd-1"}]
            await b.send(json.dumps({"type": "ack", "id": "rd-1"}))  # late: ignored
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(old.recv(), 0.5)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(a.recv(), 0.2)
        async with Tab(gw.ws_url("reader")) as later:
            await later.quiet_for(1.0)
            assert later.ids == []
    run(scenario())
    h = gw.health()
    assert h["inflight"] == 0 and h["kafkaPending"] == 0


async def next_frame(ws, timeout: float = 10.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def test_a_client_sends_to_a_user_with_its_own_name_as_from(kafka, topic, gateway):
    """Under --auth none with --allow-anonymous-send: the gateway makes the
    id, sets "from" to the sender's userId whatever the client says,
    answers "sent" once Kafka has it, and the receiver gets it live.
    Bad sends are answered, never closed; past the rate, rate-limited."""
    import websockets
    gw = gateway(args=["--allow-anonymous-send", "--send-rate", "2"])

    async def scenario():
        async with websockets.connect(gw.ws_url("sa") + "&v=2") as a, \
                Tab(gw.ws_url("sb")) as b:
            assert (await next_frame(a))["type"] == "welcome"
            await a.send(json.dumps({"type": "send", "toUser": "sb", "message": "hi",
                                     "data": {"k": 1}, "from": "mallory", "id": "mine",
                                     "ref": "c-1"}))
            sent = await next_frame(a)
            assert sent["type"] == "sent" and sent["ref"] == "c-1" and sent["id"] != "mine"
            got = (await b.wait_for(1))[0]
            assert (got["id"], got["from"], got["userId"], got["message"], got["data"]) == \
                (sent["id"], "sa", "sb", "hi", {"k": 1})
            # Invalid: answered with the reason, the connection stays.
            await a.send(json.dumps({"type": "send", "toUser": "sb", "ref": "c-2"}))
            err = await next_frame(a)
            assert (err["type"], err["reason"], err["ref"]) == ("error", "invalid", "c-2")
            await a.send(json.dumps({"type": "send", "toUser": "no one", "message": "m",
                                     "ref": "c-3"}))
            err = await next_frame(a)
            assert err["reason"] == "invalid" and "userId" in err["message"]
            # A burst of twice the rate (4), the first send included: the next is refused.
            for i in range(4):
                await a.send(json.dumps({"type": "send", "toUser": "sb", "message": str(i),
                                         "ref": f"r-{i}"}))
            answers = [await next_frame(a) for _ in range(4)]
            refused = [x for x in answers if x["type"] == "error"]
            assert refused and all(x["reason"] == "rate-limited" for x in refused)
            assert len([x for x in answers if x["type"] == "sent"]) == 4 - len(refused)
    run(scenario())


def test_sending_needs_permission(kafka, topic, gateway):
    """Under --auth none without --allow-anonymous-send, and with a token
    that lacks "send": true: forbidden. A token with it may send; a
    connection on the original protocol gets no answer (it has no send)."""
    import websockets
    from test_security import SECRET, token
    closed = gateway()
    signed = gateway(auth="jwt", env={"JWT_SECRET": SECRET})

    async def scenario():
        async with websockets.connect(closed.ws_url("anon") + "&v=2") as ws:
            assert (await next_frame(ws))["type"] == "welcome"
            await ws.send(json.dumps({"type": "send", "toUser": "x", "message": "m"}))
            err = await next_frame(ws)
            assert err["reason"] == "forbidden" and "--allow-anonymous-send" in err["message"]
        async with websockets.connect(closed.ws_url("old")) as ws:
            await ws.send(json.dumps({"type": "send", "toUser": "x", "message": "m"}))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
        for claims, answer in (({}, "forbidden"), ({"send": True}, "sent")):
            async with websockets.connect(f"ws://127.0.0.1:{signed.port}/") as ws:
                await ws.send(json.dumps({"type": "auth", "token": token("tok", **claims)}))
                assert (await next_frame(ws))["type"] == "welcome"
                await ws.send(json.dumps({"type": "send", "toUser": "x", "message": "m"}))
                got = await next_frame(ws)
                assert got.get("reason", got["type"]) == answer, got
        # A room outside the token's "rooms" (here none): forbidden.
        async with websockets.connect(f"ws://127.0.0.1:{signed.port}/") as ws:
            await ws.send(json.dumps({"type": "auth", "token": token("tok", send=True)}))
            await next_frame(ws)
            await ws.send(json.dumps({"type": "send", "toRoom": "r", "message": "m"}))
            assert (await next_frame(ws))["reason"] == "forbidden"
    run(scenario())


def room_docs(mongo, db: str) -> list[dict]:
    with mongo.client() as c:
        return list(c[db].room_notifications.find().sort("seq", 1))


def test_a_room_reaches_its_members_live_and_later_each_from_its_cursor(
        kafka, mongo, topic, mongo_db_name, gateway):
    """Stored once for the room; live to the tabs in it (each with its own
    userId), not to a tab outside it; a member who was away reads it on
    connect, a never-seen one too; read once, it does not come again."""
    import websockets
    gw = gateway()

    async def scenario():
        async with websockets.connect(gw.ws_url("alice") + "&v=2&rooms=ops") as a, \
                Tab(gw.ws_url("alice")) as outside:
            assert (await next_frame(a))["type"] == "welcome"
            await asyncio.sleep(0.3)
            nid = producer(kafka, topic, "--room", "ops", "--message", "deploy at 14:00")
            got = await next_frame(a)
            assert (got["id"], got["userId"], got["room"]) == (nid, "alice", "ops")
            await a.send(json.dumps({"type": "ack", "id": nid}))
            await outside.quiet_for(0.5)
            assert outside.ids == []
        docs = room_docs(mongo, mongo_db_name)
        assert [(d["stream"], d["id"]) for d in docs] == [("room:ops", nid)]
        async with Tab(gw.ws_url("carol") + "&rooms=ops") as carol:  # never seen before
            frames = await carol.wait_for(1)
            assert (frames[0]["id"], frames[0]["userId"], frames[0]["replayed"]) == \
                (nid, "carol", True)
        await asyncio.sleep(1.5)  # cursors are kept at most once a second
        async with Tab(gw.ws_url("alice") + "&rooms=ops") as again, \
                Tab(gw.ws_url("carol") + "&rooms=ops") as carol2:
            await again.quiet_for(1.0)
            assert again.ids == [] and carol2.ids == []
    run(scenario())


def test_out_of_order_acks_across_two_tabs_leave_exactly_the_unread(kafka, topic, gateway):
    """Broadcast 1..5 to two tabs; ack 1, 3, 5 (from either tab);
    reconnect: exactly 2 and 4 come again."""
    import websockets
    gw = gateway()

    async def scenario():
        url = gw.ws_url("oo") + "&v=2"
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            for ws in (a, b):
                assert (await next_frame(ws))["type"] == "welcome"
            await asyncio.sleep(0.3)
            produce(kafka.bootstrap, topic, [
                ("broadcast", json.dumps({"id": f"o{i}", "broadcast": True,
                                          "message": str(i)}).encode()) for i in range(1, 6)])
            ids = [(await next_frame(a))["id"] for _ in range(5)]
            assert ids == ["o1", "o2", "o3", "o4", "o5"]
            for i, ws in ((1, a), (3, b), (5, a)):
                await ws.send(json.dumps({"type": "ack", "id": f"o{i}"}))
            await asyncio.sleep(0.5)
        async with Tab(gw.ws_url("oo")) as back:
            await back.wait_for(2)
            await back.quiet_for(0.5)
            assert back.ids == ["o2", "o4"]
    run(scenario())


def test_subscribing_types_and_what_a_token_allows(kafka, topic, gateway):
    """A token's "rooms" bound what a connection may join (a room outside
    them: an error frame); subscribe answers "subscribed"; types filter
    rooms and broadcast; a send to a room of the token reaches its
    members."""
    import websockets
    from test_security import SECRET, token
    gw = gateway(auth="jwt", env={"JWT_SECRET": SECRET})

    async def auth(ws, claims):
        await ws.send(json.dumps({"type": "auth", "token": token("tia", **claims)}))
        assert (await next_frame(ws))["type"] == "welcome"

    async def scenario():
        base = f"ws://127.0.0.1:{gw.port}/"
        async with websockets.connect(base + "?rooms=a,b") as ws:
            await auth(ws, {"rooms": ["a"], "send": True})
            refused = await next_frame(ws)
            assert refused["type"] == "error" and "room b" in refused["message"]
            await ws.send(json.dumps({"type": "subscribe", "rooms": ["a", "z"],
                                      "types": ["alert"]}))
            assert (await next_frame(ws))["reason"] == "forbidden"
            sub = await next_frame(ws)
            assert sub == {"type": "subscribed", "rooms": ["a"], "types": ["alert"]}
            await asyncio.sleep(0.3)
            produce(kafka.bootstrap, topic, [
                ("room:a", json.dumps({"id": "t-chat", "room": "a", "message": "m",
                                       "type": "chat"}).encode()),
                ("room:a", json.dumps({"id": "t-alert", "room": "a", "message": "m",
                                       "type": "alert"}).encode())])
            assert (await next_frame(ws))["id"] == "t-alert"
            await ws.send(json.dumps({"type": "send", "toRoom": "b", "message": "m", "ref": "x"}))
            assert (await next_frame(ws))["reason"] == "forbidden"
            await ws.send(json.dumps({"type": "ack", "id": "t-alert"}))
        # No ?rooms=: every room of the claim.
        async with websockets.connect(base) as ws:
            await auth(ws, {"rooms": ["a", "c"]})
            await asyncio.sleep(0.3)
            produce(kafka.bootstrap, topic, [("room:c", json.dumps(
                {"id": "t-c", "room": "c", "message": "m"}).encode())])
            got = await next_frame(ws)
            assert (got["id"], got["room"]) == ("t-c", "c")
    run(scenario())


def test_the_seeds_publisher_is_a_broadcast(kafka, topic, gateway):
    gw = gateway()

    async def scenario():
        async with Tab(gw.ws_url("anyone")) as tab:
            await asyncio.sleep(0.3)
            status, body = await asyncio.to_thread(post, gw, "/publisher", {"message": "to all"})
            assert status == 202, body
            frames = await tab.wait_for(1)
            assert (frames[0]["id"], frames[0]["broadcast"], frames[0]["userId"]) == \
                (body["ids"][0], True, "anyone")
    run(scenario())


async def raw_listeners(port: int, users: list[str], want: int):
    """One plain WebSocket connection per user (the original protocol, no
    library: 10,000 of them from one process), each reading frames until it
    has WANT notification frames; returns the frames per user."""
    import base64
    import os as _os

    async def one(user):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(_os.urandom(16)).decode()
        writer.write((f"GET /?userId={user} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        return user, reader, writer

    async def read_frames(reader, count):
        got = []
        while len(got) < count:
            head = await reader.readexactly(2)
            n = head[1] & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
            payload = await reader.readexactly(n)
            if head[0] & 0x0F == 1:
                got.append(json.loads(payload))
        return got

    conns = []
    for i in range(0, len(users), 500):  # in waves: the listen backlog is finite
        conns += await asyncio.gather(*(one(u) for u in users[i:i + 500]))
    return conns, read_frames


def test_a_broadcast_to_10000_users_is_one_store_write(kafka, mongo, topic, mongo_db_name,
                                                       gateway):
    """10,000 users online: one broadcast reaches each (each frame its own
    userId), and the store holds one document for it."""
    gw = gateway(args=["--max-connections", "10100"])
    users = [f"bc-{i:05d}" for i in range(10000)]

    async def scenario():
        conns, read_frames = await raw_listeners(gw.port, users, 1)
        gw.wait_health("everyone online", lambda h: h["connections"] == len(users), timeout=60)
        await asyncio.sleep(1.0)  # each one's broadcast cursor read
        started = time.monotonic()
        produce(kafka.bootstrap, topic, [("broadcast", json.dumps(
            {"id": "to-all", "broadcast": True, "message": "hello everyone"}).encode())])
        frames = await asyncio.wait_for(
            asyncio.gather(*(read_frames(r, 1) for _, r, _ in conns)), 60)
        print(f"broadcast to {len(users)} users delivered in {time.monotonic() - started:.2f} s")
        for (user, _, w), got in zip(conns, frames):
            assert (got[0]["id"], got[0]["userId"], got[0]["broadcast"]) == ("to-all", user, True)
            w.close()
    run(scenario())
    assert [d["id"] for d in room_docs(mongo, mongo_db_name)] == ["to-all"]


def test_past_room_retention_a_new_member_reads_nothing(kafka, mongo, topic, mongo_db_name,
                                                        gateway):
    """A never-seen user gets an earlier broadcast within --room-retention,
    none past it; the sweep deletes what is past it."""
    gw = gateway(args=["--room-retention", "3"])
    produce(kafka.bootstrap, topic, [("broadcast", json.dumps(
        {"id": "old-news", "broadcast": True, "message": "m"}).encode())])
    deadline = time.monotonic() + 10
    while not room_docs(mongo, mongo_db_name):
        assert time.monotonic() < deadline
        time.sleep(0.1)

    async def first_connect(user, want):
        async with Tab(gw.ws_url(user)) as tab:
            if want:
                await tab.wait_for(1)
            await tab.quiet_for(0.5)
            return tab.ids
    assert run(first_connect("early", True)) == ["old-news"]
    time.sleep(3.5)
    assert run(first_connect("late", False)) == []
    gw.restart()  # the sweep, at start
    deadline = time.monotonic() + 10
    while room_docs(mongo, mongo_db_name):
        assert time.monotonic() < deadline, room_docs(mongo, mongo_db_name)
        time.sleep(0.2)


def test_a_room_name_that_is_not_utf8_is_refused_and_nothing_breaks(gateway):
    """?rooms= is URL-decoded: bytes that are no UTF-8 (nor a room name)
    get an "invalid" error frame, not echoed; the gateway stays up."""
    import websockets
    gw = gateway()

    async def scenario():
        async with websockets.connect(gw.ws_url("odd") + "&v=2&rooms=ok,%C3%28" + "%FF" * 80) as ws:
            assert (await next_frame(ws))["type"] == "welcome"
            err = await next_frame(ws)
            assert (err["type"], err["reason"]) == ("error", "invalid")
        async with websockets.connect(gw.ws_url("odd") + "&rooms=%FF%FE") as ws:  # v1 too
            await asyncio.sleep(0.3)
    run(scenario())
    assert gw.healthz() == 200
