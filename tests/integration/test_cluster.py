"""Several gateways on one topic and group (docs/adr/0001): a user's tabs
may sit on any node, and every tab gets every notification live, whichever
node consumed it; an ack on one node is the read mark on every node; an
operator's disconnect closes the user's tabs everywhere.

Real Kafka (auto-creation off: the gateways create the presence topic and
their inboxes) and mongo-java-server."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import websockets

from servers import produce
from wsclient import Tab


def run(coro):
    return asyncio.run(coro)


def cluster(gw) -> dict:
    return gw.health()["cluster"]


def wait_cluster(gws, remote_users: list[int] | None = None, timeout: float = 30.0) -> None:
    """Until every node is ready, sees the others live, and (if given) knows
    that many users held elsewhere."""
    deadline = time.monotonic() + timeout
    while True:
        states = [cluster(gw) for gw in gws]
        ok = all(s["ready"] and s["peers"] == len(gws) - 1 for s in states)
        if ok and remote_users is not None:
            ok = [s["remoteUsers"] for s in states] == remote_users
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the nodes did not settle: {states}")
        time.sleep(0.1)


def nodes(gateway, n: int = 2) -> list:
    """n gateways, node-a, node-b...; returned once the consumer group
    settled (each has partitions) and each reads its inbox."""
    gws = [gateway(args=["--node-id", f"node-{chr(97 + i)}"]) for i in range(n)]
    for gw in gws:
        gw.wait_health("partitions and the inbox", lambda h: h["partitions"] > 0
                       and h["cluster"]["ready"], timeout=30)
    return gws


def post(gw, path: str) -> tuple[int, dict]:
    req = urllib.request.Request(gw.http_url(path), data=b"", method="POST",
                                 headers={"Authorization": f"Bearer {gw.ops_key}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.load(r)


def stored(mongo, db: str) -> list:
    with mongo.client() as c:
        return list(c[db].notifications.find({}, {"_id": 0, "userId": 1, "id": 1}))


def test_tabs_on_one_node_get_live_what_the_other_consumed(kafka, mongo, topic, mongo_db_name,
                                                           gateway):
    """Every user's only tab is on node b; node a owns some of the topic's
    partitions, so it consumes some of their notifications and must hand
    them over live. Nothing is stored, every offset completes."""
    a, b = nodes(gateway)
    users = [f"u{i}" for i in range(20)]

    async def scenario():
        tabs = [Tab(b.ws_url(u)) for u in users]
        for t in tabs:
            await t.__aenter__()
        try:
            await asyncio.to_thread(wait_cluster, [a, b], [20, 0])
            produce(kafka.bootstrap, topic,
                    [{"id": f"{u}-{k}", "userId": u, "message": str(k)} for k in range(3)
                     for u in users])
            for u, t in zip(users, tabs):
                await t.wait_for(3, timeout=10)
                assert t.ids == [f"{u}-{k}" for k in range(3)]  # in topic order
        finally:
            for t in tabs:
                await t.close()
    run(scenario())
    assert stored(mongo, mongo_db_name) == []
    for gw in (a, b):
        gw.wait_health("every offset done", lambda h: h["kafkaPending"] == 0
                       and h["cluster"]["inboxPending"] == 0)
    assert a.health()["consumed"] > 0 and b.health()["consumed"] > 0


def test_an_ack_on_one_node_is_the_read_mark_on_the_other(kafka, mongo, topic, mongo_db_name,
                                                          gateway):
    """A user with a v2 tab on each node: both get each notification; an ack
    on one tells the other {"type":"acked"}; the other node's copy is then
    done (its offset completes, nothing is stored)."""
    a, b = nodes(gateway)

    async def frames(ws, count, timeout=10.0):
        got = []
        while len(got) < count:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
        return got

    async def scenario():
        async with websockets.connect(a.ws_url("both") + "&v=2") as ta, \
                websockets.connect(b.ws_url("both") + "&v=2") as tb:
            for ws in (ta, tb):
                assert await frames(ws, 1) == [{"type": "welcome", "userId": "both"}]
            await asyncio.to_thread(wait_cluster, [a, b], [1, 1])
            produce(kafka.bootstrap, topic,
                    [{"id": f"rm-{k}", "userId": "both", "message": "m"} for k in range(4)])
            got_a = [f["id"] for f in await frames(ta, 4)]
            got_b = [f["id"] for f in await frames(tb, 4)]
            assert got_a == got_b == [f"rm-{k}" for k in range(4)]
            for k in range(2):
                await ta.send(json.dumps({"type": "ack", "id": f"rm-{k}"}))
            for k in range(2, 4):
                await tb.send(json.dumps({"type": "ack", "id": f"rm-{k}"}))
            told_b = await frames(tb, 2)
            told_a = await frames(ta, 2)
            assert told_b == [{"type": "acked", "id": f"rm-{k}"} for k in range(2)]
            assert told_a == [{"type": "acked", "id": f"rm-{k}"} for k in range(2, 4)]
            for gw in (a, b):
                await asyncio.to_thread(
                    gw.wait_health, "every copy done",
                    lambda h: h["inflight"] == 0 and h["kafkaPending"] == 0
                    and h["cluster"]["inboxPending"] == 0)
    run(scenario())
    assert stored(mongo, mongo_db_name) == []


def test_an_operator_disconnect_closes_the_users_tabs_on_every_node(gateway):
    a, b = nodes(gateway)

    async def scenario():
        async with websockets.connect(b.ws_url("gone")) as tb:
            await asyncio.to_thread(wait_cluster, [a, b], [1, 0])
            status, body = await asyncio.to_thread(post, a, "/api/users/gone/disconnect")
            assert (status, body) == (200, {"closed": 0, "otherGateways": 1})
            await asyncio.wait_for(tb.wait_closed(), 10)
            assert tb.close_code == 4003
    run(scenario())
