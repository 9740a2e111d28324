"""web/notify.js, the client library, in a real browser (Debian's
Chromium through Playwright) against the real gateway and Kafka: how it is
served, read state across two tabs of test.html (built on it), and what
it does after each close code."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from websockets.sync.client import connect as ws_connect

from servers import produce
from test_web import browser, expect, page, connected, TIMEOUT_MS  # noqa: F401 (fixtures)
from test_security import SECRET, token as jwt_token

playwright_sync = pytest.importorskip("playwright.sync_api")


def test_served_as_a_javascript_module_any_page_may_load(gateway):
    gw = gateway()
    with urllib.request.urlopen(gw.http_url("/notify.js"), timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert b"export class NotifyClient" in r.read()


def test_a_notification_read_in_one_tab_is_read_in_the_other(kafka, topic, gateway, browser):
    """Two tabs of test.html reading by hand (autoack=0): both show it
    unread; Mark read in one marks it read in the other ("acked"); a tab
    opened later does not get it again."""
    gw = gateway()
    url = gw.http_url("/?user=reader&autoconnect=1&autoack=0")
    ctx = browser.new_context()
    ctx.set_default_timeout(TIMEOUT_MS)
    a, b = ctx.new_page(), ctx.new_page()
    for p in (a, b):
        p.goto(url)
        connected(p)
    produce(kafka.bootstrap, topic, [{"id": "rs-1", "userId": "reader", "message": "read me"}])
    cards = [p.locator('.notification[data-id="rs-1"]') for p in (a, b)]
    for card in cards:
        expect(card).to_be_visible()
        expect(card).not_to_have_attribute("data-read", "true")
    cards[0].locator(".mark-read").click()
    expect(cards[0]).to_have_attribute("data-read", "true")
    expect(cards[1]).to_have_attribute("data-read", "true")
    later = ctx.new_page()
    later.goto(url)
    connected(later)
    later.wait_for_timeout(1000)
    assert later.locator(".notification").count() == 0
    assert gw.health()["inflight"] == 0
    ctx.close()


START = """async ({opts, useToken}) => {
  const { NotifyClient } = await import("/notify.js");
  window.states = [];
  window.got = [];
  if (useToken) opts.getToken = () => window.mintToken();
  window.client = new NotifyClient({...opts,
    onStatus: (s) => window.states.push(s),
    onNotification: (n) => window.got.push(n.id)});
  window.client.connect();
}"""


def states(page) -> list[dict]:
    return page.evaluate("window.states")


def wait_state(page, pred, what: str):
    try:
        page.wait_for_function(f"window.states.some(s => {pred})", timeout=TIMEOUT_MS)
    except playwright_sync.Error:
        raise AssertionError(f"never {what}; states: {states(page)}") from None
    return states(page)


def start(page, gw, opts: dict, use_token: bool = False):
    page.goto(gw.http_url("/"))
    page.evaluate(START, {"opts": {"url": f"ws://127.0.0.1:{gw.port}", **opts},
                          "useToken": use_token})
    wait_state(page, 's.state === "open"', "open")


def test_it_retries_after_1001_and_1013_and_stops_after_4003_and_1009(kafka, topic, gateway,
                                                                      page):
    gw = gateway(args=["--max-connections", "1"])
    start(page, gw, {"userId": "rt"})
    # 1001 (the gateway stopping), then back: it comes back by itself.
    gw.restart()
    s = wait_state(page, 's.state === "retrying" && s.code === 1001', "retry after 1001")
    page.wait_for_function('window.states.filter(s => s.state === "open").length >= 2')
    produce(kafka.bootstrap, topic, [{"id": "after-restart", "userId": "rt", "message": "m"}])
    page.wait_for_function('window.got.includes("after-restart")')
    # 1013 (the gateway full): retried with backoff until there is room.
    page.evaluate("window.client.close()")
    gw.wait_health("the page gone", lambda h: h["connections"] == 0)
    with ws_connect(gw.ws_url("other")):
        page.evaluate("window.states = []; window.client.connect()")
        wait_state(page, 's.state === "retrying" && s.code === 1013', "retry after 1013")
    page.wait_for_function('window.states.some(s => s.state === "open")')
    # 4003 (an operator's disconnect): stopped, no retry.
    req = urllib.request.Request(gw.http_url("/api/users/rt/disconnect"), method="POST",
                                 headers={"Authorization": f"Bearer {gw.ops_key}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.load(r) == {"closed": 1, "otherGateways": 0}
    s = wait_state(page, 's.state === "stopped" && s.code === 4003', "stop after 4003")
    page.wait_for_timeout(1500)
    assert gw.health()["connections"] == 0
    # 1009 (a message over the limit): stopped.
    page.evaluate("window.states = []; window.client.connect()")
    wait_state(page, 's.state === "open"', "open")
    page.evaluate("""window.client.send({toUser: "x", message: "x".repeat(5000)}).catch(() => {})""")
    wait_state(page, 's.state === "stopped" && s.code === 1009', "stop after 1009")


def test_with_tokens_4001_takes_a_fresh_one_and_1008_with_the_same_stops(kafka, topic, gateway,
                                                                         page):
    """An expiring token: at 4001 getToken() gives a new one and it goes
    on (a notification published meanwhile arrives); a refused token that
    getToken() gives again: stopped after 1008. A newer tab at the cap
    replaces it: 4002, stopped."""
    gw = gateway(auth="jwt", env={"JWT_SECRET": SECRET},
                 args=["--jwt-leeway", "0", "--max-connections-per-user", "1"])
    minted = []  # (token, exp)
    fresh = {"always": True}

    def mint():
        # Always a new one (refreshes go through), or the last one until it
        # has run out (a refresh finds nothing new: the gateway closes 4001).
        if fresh["always"] or not minted or time.time() >= minted[-1][1]:
            minted.append((jwt_token("tk", ttl=2), int(time.time()) + 2))
        return minted[-1][0]
    page.expose_function("mintToken", mint)
    start(page, gw, {}, use_token=True)
    page.wait_for_timeout(4500)  # past two tokens' lives: refreshed before each ran out
    assert [s["state"] for s in states(page)] == ["connecting", "open"]
    assert len(minted) >= 3
    fresh["always"] = False
    s = wait_state(page, 's.state === "retrying" && s.code === 4001', "4001")
    page.wait_for_function('window.states.filter(s => s.state === "open").length >= 2')
    # A newer connection of the same user replaces this one: 4002, stopped.
    page.evaluate("window.states = []")
    with ws_connect(f"ws://127.0.0.1:{gw.port}/?v=2") as ws:
        ws.send(json.dumps({"type": "auth", "token": jwt_token("tk")}))
        assert json.loads(ws.recv(5))["type"] == "welcome"
    wait_state(page, 's.state === "stopped" && s.code === 4002', "4002")
    # The same bad token again after 1008: stopped, not a loop.
    page.evaluate("""async () => {
      const { NotifyClient } = await import("/notify.js");
      window.states = [];
      window.calls = 0;
      new NotifyClient({url: "ws://127.0.0.1:%d", getToken: () => { window.calls++; return "not.a.token"; },
                        onStatus: (s) => window.states.push(s)}).connect();
    }""" % gw.port)
    wait_state(page, 's.state === "stopped" && s.code === 1008', "1008")
    page.wait_for_timeout(1000)
    assert page.evaluate("window.calls") == 2  # the first connect, and the check


def test_rooms_and_types_from_the_library(kafka, topic, gateway, page):
    """rooms and types given to the client are joined on connect;
    subscribe() changes them and resolves with what the gateway applied."""
    gw = gateway()
    start(page, gw, {"userId": "lib", "rooms": ["ops"], "types": ["alert"]})
    produce(kafka.bootstrap, topic, [
        ("room:ops", json.dumps({"id": "l-chat", "room": "ops", "message": "m", "type": "chat"})),
        ("room:ops", json.dumps({"id": "l-alert", "room": "ops", "message": "m",
                                 "type": "alert"}))])
    page.wait_for_function('window.got.includes("l-alert")')
    applied = page.evaluate('window.client.subscribe({rooms: ["dev"], types: null})')
    assert applied == {"rooms": ["dev"], "types": None}
    produce(kafka.bootstrap, topic, [
        ("room:ops", json.dumps({"id": "l-ops", "room": "ops", "message": "m"})),
        ("room:dev", json.dumps({"id": "l-dev", "room": "dev", "message": "m"}))])
    page.wait_for_function('window.got.includes("l-dev")')
    page.wait_for_timeout(500)
    assert page.evaluate("window.got") == ["l-alert", "l-dev"]
