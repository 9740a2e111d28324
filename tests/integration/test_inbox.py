"""A user's inbox over HTTP on the real gateway, Kafka and store: what is
pending (stored, or pushed to a tab and not acknowledged), newest first in
pages; acknowledgements of one or all; who may ask (an API key for any
user, a user token for its own only)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request

import pytest

from conftest import produce
from test_security import SECRET, token
from wsclient import Tab

KEY = "inbox-key-0123456789abcdef"


def call(gw, method: str, path: str, bearer: str | None = KEY) -> tuple[int, dict]:
    req = urllib.request.Request(gw.http_url(path), method=method,
                                 data=b"" if method == "POST" else None)
    if bearer:
        req.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def note(nid: str, user: str) -> dict:
    return {"id": nid, "userId": user, "message": f"note {nid}"}


def ids(body: dict) -> list[str]:
    return [n["id"] for n in body["notifications"]]


def wait_stored(gw, n: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, body = call(gw, "GET", "/status.json")
        if status == 200 and body["stored"] >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{n} notifications were not stored: {body}")


def test_the_inbox_pages_newest_first_and_acks_over_http(kafka, topic, gateway, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("backend " + KEY + "\n")
    gw = gateway(args=["--api-keys-file", str(keys)])
    gw.wait_assigned()
    produce(kafka.bootstrap, topic, [("ib", json.dumps(note(f"n{i}", "ib")).encode())
                                     for i in range(1, 6)])
    wait_stored(gw, 5)

    # Pages of two, newest first, each item as pushed with its state.
    status, page = call(gw, "GET", "/api/users/ib/notifications?limit=2")
    assert status == 200 and ids(page) == ["n5", "n4"], page
    assert page["notifications"][0]["state"] == "pending"
    assert page["notifications"][0]["message"] == "note n5"
    status, page2 = call(gw, "GET", f"/api/users/ib/notifications?limit=2&after={page['next']}")
    assert ids(page2) == ["n3", "n2"]
    # New ones arriving do not move the cursor.
    produce(kafka.bootstrap, topic, [("ib", json.dumps(note("n6", "ib")).encode())])
    wait_stored(gw, 6)
    status, page3 = call(gw, "GET", f"/api/users/ib/notifications?limit=2&after={page2['next']}")
    assert (ids(page3), page3["next"]) == (["n1"], None)
    assert ids(call(gw, "GET", "/api/users/ib/notifications")[1]) == [f"n{i}" for i in
                                                                      range(6, 0, -1)]

    async def scenario():
        # A tab that receives and never acknowledges: what it holds is
        # still pending, listed once.
        async with Tab(gw.ws_url("ib"), ack=False) as tab:
            await tab.wait_for(6)
            status, body = await asyncio.to_thread(call, gw, "GET", "/api/users/ib/notifications")
            assert ids(body) == [f"n{i}" for i in range(6, 0, -1)]
            # Live, pushed and unacknowledged: pending too.
            produce(kafka.bootstrap, topic, [("ib", json.dumps(note("n7", "ib")).encode())])
            await tab.wait_for(7)
            status, body = await asyncio.to_thread(call, gw, "GET", "/api/users/ib/notifications")
            assert ids(body)[0] == "n7" and len(body["notifications"]) == 7
            # One acknowledged over HTTP, then again: 1, then 0.
            assert await asyncio.to_thread(call, gw, "POST",
                                           "/api/users/ib/notifications/n7/ack") == (200, {"acked": 1})
            assert await asyncio.to_thread(call, gw, "POST",
                                           "/api/users/ib/notifications/n7/ack") == (200, {"acked": 0})
            # All the rest.
            assert await asyncio.to_thread(call, gw, "POST",
                                           "/api/users/ib/notifications/ack-all") == (200, {"acked": 6})
            status, body = await asyncio.to_thread(call, gw, "GET", "/api/users/ib/notifications")
            assert (ids(body), body["next"]) == ([], None)
    asyncio.run(scenario())

    # The tab closed holding them unacknowledged, but they were acknowledged:
    # nothing comes back.
    async def again():
        async with Tab(gw.ws_url("ib")) as tab:
            await tab.quiet_for(1.0)
            assert tab.ids == []
    asyncio.run(again())

    # An offline user's stored one, acknowledged over HTTP, is gone.
    produce(kafka.bootstrap, topic, [("away", json.dumps(note("a1", "away")).encode())])
    wait_stored(gw, 7)
    assert call(gw, "POST", "/api/users/away/notifications/a1/ack") == (200, {"acked": 1})
    assert ids(call(gw, "GET", "/api/users/away/notifications")[1]) == []


def test_the_inbox_refuses_bad_input_and_callers_clearly(gateway, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("backend " + KEY + "\n")
    gw = gateway(args=["--api-keys-file", str(keys)])
    base = "/api/users/ib/notifications"
    for query, says in [("?limit=0", "limit"), ("?limit=501", "limit"), ("?limit=x", "limit"),
                        ("?after=nope", "after"), ("?after=s", "after"),
                        ("?state=all", "HISTORY_RETENTION"), ("?state=read", "state")]:
        status, body = call(gw, "GET", base + query)
        assert status == 400 and says in body["error"], (query, body)
    assert call(gw, "GET", "/api/users/no%20one/notifications")[0] == 400
    assert call(gw, "GET", base, bearer=None)[0] == 401
    assert call(gw, "GET", base, bearer="not-a-key-0123456789")[0] == 403
    # An API key names no user.
    status, body = call(gw, "GET", "/messages")
    assert status == 400 and "names no user" in body["error"]
    assert call(gw, "GET", "/api/messages")[0] == 400


def test_a_user_token_reads_and_acks_its_own_inbox_only(kafka, topic, gateway, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("backend " + KEY + "\n")
    gw = gateway(auth="jwt", env={"JWT_SECRET": SECRET}, args=["--api-keys-file", str(keys)])
    gw.wait_assigned()
    produce(kafka.bootstrap, topic, [("tia", json.dumps(note("t1", "tia")).encode()),
                                     ("uma", json.dumps(note("u1", "uma")).encode())])
    wait_stored(gw, 2)
    tia = token("tia")
    status, body = call(gw, "GET", "/api/users/tia/notifications", bearer=tia)
    assert status == 200 and ids(body) == ["t1"]
    # Seeds 001 and 002: the token's user.
    assert ids(call(gw, "GET", "/messages", bearer=tia)[1]) == ["t1"]
    assert ids(call(gw, "GET", "/api/messages", bearer=tia)[1]) == ["t1"]
    # Another user's: neither read nor acknowledged.
    assert call(gw, "GET", "/api/users/uma/notifications", bearer=tia)[0] == 403
    assert call(gw, "POST", "/api/users/uma/notifications/u1/ack", bearer=tia)[0] == 403
    assert ids(call(gw, "GET", "/api/users/uma/notifications")[1]) == ["u1"]
    # Bad tokens: 401.
    assert call(gw, "GET", "/messages", bearer=token("tia", ttl=-120))[0] == 401
    assert call(gw, "GET", "/messages", bearer=token("tia", secret="x" * 40))[0] == 401
    # A user token opens nothing of the operators'.
    assert call(gw, "GET", "/metrics", bearer=tia)[0] == 403
    assert call(gw, "GET", "/status.json", bearer=tia)[0] == 403
    assert call(gw, "POST", "/api/notifications", bearer=tia)[0] == 403
    assert call(gw, "POST", "/api/users/tia/disconnect", bearer=tia)[0] == 403
    assert call(gw, "POST", "/publisher", bearer=tia)[0] == 403
    # Its own: acknowledged.
    assert call(gw, "POST", "/api/users/tia/notifications/t1/ack", bearer=tia) == (200, {"acked": 1})
    assert ids(call(gw, "GET", "/messages", bearer=tia)[1]) == []


def wait_listed(gw, path: str, want: list[str], timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body = call(gw, "GET", path)
        if status == 200 and ids(body) == want:
            return body
        assert time.monotonic() < deadline, (path, status, body)
        time.sleep(0.2)


@pytest.mark.parametrize("store", ["mongodb", "sqlite"])
def test_with_a_history_state_all_lists_what_was_acknowledged(kafka, topic, gateway, tmp_path,
                                                              store):
    """--history-retention: an acknowledged notification stays listed with
    state=all, "acked" with its ackedAt, whether a tab acknowledged it live
    or it was stored and acknowledged over HTTP; pending ones beside it,
    newest first. Without it, state=all says what it needs."""
    keys = tmp_path / "keys"
    keys.write_text("backend " + KEY + "\n")
    extra = ["--store", f"sqlite:{tmp_path / 'n.db'}"] if store == "sqlite" else []
    gw = gateway(args=["--api-keys-file", str(keys), "--history-retention", "3600", *extra])
    gw.wait_assigned()

    async def live():
        async with Tab(gw.ws_url("hi")) as tab:
            produce(kafka.bootstrap, topic, [("hi", json.dumps(note("h1", "hi")).encode())])
            await tab.wait_for(1)
            await asyncio.sleep(0.3)  # the ack
    asyncio.run(live())
    body = wait_listed(gw, "/api/users/hi/notifications?state=all", ["h1"])
    item = body["notifications"][0]
    assert item["state"] == "acked" and item["message"] == "note h1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", item["ackedAt"]), item
    assert ids(call(gw, "GET", "/api/users/hi/notifications")[1]) == []  # pending: none

    # Stored, then acknowledged over HTTP: moved into the history.
    produce(kafka.bootstrap, topic, [("away", json.dumps(note("h2", "away")).encode())])
    wait_listed(gw, "/api/users/away/notifications", ["h2"])
    assert call(gw, "POST", "/api/users/away/notifications/h2/ack") == (200, {"acked": 1})
    produce(kafka.bootstrap, topic, [("away", json.dumps(note("h3", "away")).encode())])
    body = wait_listed(gw, "/api/users/away/notifications?state=all", ["h3", "h2"])
    assert [n["state"] for n in body["notifications"]] == ["pending", "acked"]
    # Pages over both.
    status, page = call(gw, "GET", "/api/users/away/notifications?state=all&limit=1")
    assert ids(page) == ["h3"]
    status, page = call(gw, "GET", f"/api/users/away/notifications?state=all&limit=1&after={page['next']}")
    assert ids(page) == ["h2"] and page["next"] is None


def test_a_second_gateway_on_one_sqlite_file_is_refused_naming_it(gateway, tmp_path):
    """A SQLite store serves one gateway: another process is refused at
    start, saying which file and what to use instead; after the first
    stops, the file is free again."""
    db = tmp_path / "one.db"
    first = gateway(args=["--store", f"sqlite:{db}"])
    second = gateway(args=["--store", f"sqlite:{db}"], wait=False)
    deadline = time.monotonic() + 20
    while second.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert second.returncode not in (None, 0)
    assert f"the SQLite store {db} is in use by another gateway" in second.log_text()
    assert "MongoDB" in second.log_text()
    first.stop()
    second.restart()  # the lock went with the first
    assert second.healthz() == 200
