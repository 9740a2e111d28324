"""web/test.html in a real browser: Debian's Chromium driven by Playwright
(sync API), against the real daemon, Kafka and a MongoDB-wire store.

Playwright's own browser download is not used: the browser is always
/usr/bin/chromium. One browser per module, a fresh context (own
localStorage, own cookies) per test.

    served by the daemon   live notification shown, acked (server side too),
                           screenshot kept in tests/artifacts/test_html.png
    replay + duplicates    stored while offline, typed into the form,
                           replayed oldest first, a resent id dropped
    opened as a file       file:// page with ?server=… receives live
    no user                the page refuses to connect and says why
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from conftest import PRODUCER_BIN, REPO
from servers import free_port, produce

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
ARTIFACTS = REPO / "tests" / "artifacts"
PAGE = REPO / "web" / "test.html"
TIMEOUT_MS = 15_000  # for every wait; a notification takes well under a second
expect.set_options(timeout=TIMEOUT_MS)


# --------------------------------------------------------------------------
# Helpers

def note(nid: str, user: str, message: str) -> dict:
    return {"id": nid, "userId": user, "message": message,
            "timestamp": "2026-11-25T12:00:00.000Z"}


def stored_ids(mongo, db: str, user: str) -> list[str]:
    with mongo.client() as c:
        return [d["id"] for d in c[db].notifications.find({"userId": user}).sort("seq", 1)]


def wait_stored_count(mongo, db: str, user: str, count: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    ids: list[str] = []
    while time.monotonic() < deadline:
        ids = stored_ids(mongo, db, user)
        if len(ids) == count:
            return ids
        time.sleep(0.1)
    raise AssertionError(f"expected {count} stored notifications for {user}, found {ids}")


def token() -> str:
    return uuid.uuid4().hex[:10]


def list_ids(page) -> list[str]:
    """The data-id of every card, in the page's (DOM) order."""
    return page.locator("#list > li.notification").evaluate_all(
        "els => els.map(e => e.getAttribute('data-id'))")


# --------------------------------------------------------------------------
# Browser fixtures

@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A page in a fresh context; console errors and uncaught exceptions are
    collected in page.problems (checked by the tests that expect none)."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    pg.problems = []
    pg.on("pageerror", lambda e: pg.problems.append(f"uncaught: {e}"))
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(f"console: {m.text}"))
    yield pg
    context.close()


def connected(page):
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")


# --------------------------------------------------------------------------
# Tests

def test_served_by_the_daemon_shows_and_acks_a_live_notification(
        kafka, mongo, topic, mongo_db_name, gateway, page):
    gw = gateway()
    gw.wait_assigned()
    page.goto(gw.http_url("/?user=webuser&autoconnect=1"))
    # The server address was derived from where the page came from.
    expect(page.locator("#server")).to_have_value(f"ws://127.0.0.1:{gw.port}")
    connected(page)
    gw.wait_health("the page's connection", lambda h: h["connections"] == 1)

    nid = f"web-{token()}"
    message = f"Deploy finished <b>not bold</b> & ünïcode ✓ {token()}"
    produce(kafka.bootstrap, topic, [note(nid, "webuser", message)])

    card = page.locator(f'#list > li.notification[data-id="{nid}"]')
    expect(card).to_be_visible()
    expect(card.locator(".message")).to_have_text(message)  # text, not markup
    expect(card).to_contain_text(message)  # retried: a one-shot read raced the render
    assert card.locator("b").count() == 0
    expect(card).not_to_contain_class("replayed")
    assert card.get_attribute("data-replayed") is None
    expect(page.locator("#received-count")).to_have_text("1")
    expect(page.locator("#duplicate-count")).to_have_text("0")
    expect(page.locator("#ack-count")).to_have_text("1")
    expect(page.locator("#empty")).to_be_hidden()

    # The ack reached the daemon: nothing waits for one any more (without it
    # the notification stays in flight for the 30 s ack timeout).
    gw.wait_health("no notification in flight", lambda h: h["inflight"] == 0)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_html.png"), full_page=True,
                    animations="disabled")
    assert not page.problems, page.problems

    # Closing the tab: a live notification that was not acked would be
    # stored now; an acked one must not be.
    page.close()
    gw.wait_health("the tab's connection closed and the store queue empty",
                lambda h: h["connections"] == 0 and h["storeBacklog"] == 0)
    time.sleep(1.0)
    with mongo.client() as c:
        assert c[mongo_db_name].notifications.count_documents({"id": nid}) == 0
        assert c[mongo_db_name].notifications.count_documents({}) == 0


def test_replayed_oldest_first_and_duplicates_dropped(
        kafka, mongo, topic, mongo_db_name, gateway, page):
    gw = gateway()
    gw.wait_assigned()
    user = "replay.user"
    tag = token()
    ids = [f"rp-{tag}-{i}" for i in range(3)]
    # One key, one partition: stored in this order.
    produce(kafka.bootstrap, topic, [note(i, user, f"stored while offline #{n} {tag}")
                                     for n, i in enumerate(ids)])
    assert wait_stored_count(mongo, mongo_db_name, user, 3) == ids

    # As a person would: the page with nothing in its query, type, click.
    page.goto(gw.http_url("/"))
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    server = page.locator("#server")
    server.click()
    server.press("ControlOrMeta+a")
    server.press("Backspace")
    server.press_sequentially(f"127.0.0.1:{gw.port}")  # no scheme: the page adds ws://
    page.locator("#user").click()
    page.locator("#user").press_sequentially(user)
    page.locator("#connect").click()
    connected(page)

    replayed = page.locator('#list > li.notification.replayed[data-replayed="true"]')
    expect(replayed).to_have_count(3)
    # Delivered oldest first; the page puts the newest on top.
    assert list_ids(page) == list(reversed(ids))
    for n, i in enumerate(ids):
        card = page.locator(f'#list > li.notification[data-id="{i}"]')
        expect(card.locator(".message")).to_have_text(f"stored while offline #{n} {tag}")
        expect(card.locator(".badge.replayed-marker")).to_have_text("replayed")
    expect(page.locator("#received-count")).to_have_text("3")
    expect(page.locator("#ack-count")).to_have_text("3")
    expect(page.locator("#duplicate-count")).to_have_text("0")

    # Every replayed one was acked: the store empties.
    wait_stored_count(mongo, mongo_db_name, user, 0, timeout=10)
    gw.wait_health("no notification in flight", lambda h: h["inflight"] == 0)

    # The same id again (a producer retry, a Kafka redelivery): acked,
    # counted as a duplicate, not shown twice. A new id after it is shown.
    fresh = f"live-{tag}"
    produce(kafka.bootstrap, topic, [note(ids[1], user, "second copy"),
                                     note(fresh, user, f"live after replay {tag}")])
    expect(page.locator(f'#list > li.notification[data-id="{fresh}"]')).to_be_visible()
    expect(page.locator("#duplicate-count")).to_have_text("1")
    expect(page.locator("#ack-count")).to_have_text("5")
    expect(page.locator("#received-count")).to_have_text("4")
    assert list_ids(page) == [fresh] + list(reversed(ids))
    expect(page.locator("#list")).not_to_contain_text("second copy")
    gw.wait_health("no notification in flight", lambda h: h["inflight"] == 0)
    assert not page.problems, page.problems

    page.close()
    gw.wait_health("the tab's connection closed and the store queue empty",
                lambda h: h["connections"] == 0 and h["storeBacklog"] == 0)
    time.sleep(0.5)
    assert stored_ids(mongo, mongo_db_name, user) == []


def test_opened_as_a_file_receives_live(kafka, topic, gateway, page):
    # A file:// page's Origin is "null": refused unless listed.
    gw = gateway(args=["--allowed-origins", "null"])
    gw.wait_assigned()
    page.goto("file://" + str(PAGE) + f"?server=ws://127.0.0.1:{gw.port}&user=fileuser&autoconnect=1")
    expect(page.locator("#server")).to_have_value(f"ws://127.0.0.1:{gw.port}")
    expect(page.locator("#user")).to_have_value("fileuser")
    connected(page)
    gw.wait_health("the page's connection", lambda h: h["connections"] == 1)

    nid = f"file-{token()}"
    message = f"from a file:// page {token()}"
    produce(kafka.bootstrap, topic, [note(nid, "fileuser", message)])
    card = page.locator(f'#list > li.notification[data-id="{nid}"]')
    expect(card.locator(".message")).to_have_text(message)
    expect(page.locator("#ack-count")).to_have_text("1")
    gw.wait_health("no notification in flight", lambda h: h["inflight"] == 0)
    assert not page.problems, page.problems


def test_no_user_means_no_connection(gateway, page):
    gw = gateway()
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    status = page.locator("#status")
    error = page.locator("#form-error")
    user = page.locator("#user")

    # autoconnect without a user: an error, not a connection.
    page.goto(gw.http_url("/?autoconnect=1"))
    expect(error).to_have_text("Enter a user id.")
    expect(error).to_be_visible()
    page.wait_for_timeout(500)
    assert sockets == [], "the page opened a WebSocket without a user id"
    expect(status).to_have_attribute("data-state", "disconnected")
    expect(user).to_have_attribute("aria-invalid", "true")
    expect(user).to_be_focused()

    # Clicking Connect with blanks only: the same.
    user.press_sequentially("   ")
    page.locator("#connect").click()
    expect(error).to_have_text("Enter a user id.")
    expect(status).to_have_attribute("data-state", "disconnected")

    # A user id the protocol does not allow is refused by the page too.
    user.fill("")
    user.press_sequentially("bad user!")
    page.locator("#connect").click()
    expect(error).to_contain_text("1 to 128")
    page.wait_for_timeout(500)
    expect(status).to_have_attribute("data-state", "disconnected")
    assert sockets == []
    assert gw.health()["connections"] == 0

    # Fixing it clears the error, and then it connects.
    user.fill("")
    user.press_sequentially("gooduser")
    expect(error).to_have_text("")
    expect(error).to_be_hidden()
    expect(user).to_have_attribute("aria-invalid", "false")
    page.locator("#connect").click()
    connected(page)
    # Protocol v2 (notify.js): control frames such as "acked" come too.
    assert len(sockets) == 1 and sockets[0].endswith("/?v=2&userId=gooduser")
    gw.wait_health("the page's connection", lambda h: h["connections"] == 1)
    assert not page.problems, page.problems


def test_embedded_mode_page_shows_a_producer_notification(gateway, page, tmp_path):
    """The newcomer's setup: no Kafka, no MongoDB; the gateway's embedded
    broker and SQLite store, the producer CLI, and the page."""
    kafka_port = free_port()
    gw = gateway(topic="notifications", args=["--embedded", "--embedded-port", kafka_port,
                       "--store", f"sqlite:{tmp_path}/notifications.db"])
    gw.wait_assigned()
    page.goto(gw.http_url("/?user=u1&autoconnect=1"))
    connected(page)
    gw.wait_health("the page's connection", lambda h: h["connections"] == 1)

    message = f"Hello from the embedded broker {token()}"
    sent = subprocess.run([str(PRODUCER_BIN), "--brokers", f"127.0.0.1:{kafka_port}",
                           "--user", "u1", "--message", message],
                          capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    nid = sent.stdout.strip()
    card = page.locator(f'#list > li.notification[data-id="{nid}"]')
    expect(card.locator(".message")).to_have_text(message)
    expect(page.locator("#ack-count")).to_have_text("1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_html_embedded.png"), full_page=True,
                    animations="disabled")
    assert not page.problems, page.problems


def test_with_auth_jwt_the_page_sends_its_token_and_shows_the_users_notifications(
        kafka, topic, gateway, page):
    """--auth jwt: the token pasted in the page goes in the first message
    (not the URL); the user's notification arrives; a bad token stops the
    page from retrying and says why."""
    secret = "web-secret-0123456789abcdef0123456789"
    gw = gateway(auth="jwt", env={"JWT_SECRET": secret})
    gw.wait_assigned()
    minted = subprocess.run([str(PRODUCER_BIN), "--token-for", "webjwt"], capture_output=True,
                            text=True, env={"JWT_SECRET": secret}, timeout=10)
    assert minted.returncode == 0, minted.stderr
    page.goto(gw.http_url("/?user=webjwt"))
    page.fill("#token", minted.stdout.strip())
    page.click("#connect")
    connected(page)
    nid = f"jwt-{token()}"
    produce(kafka.bootstrap, topic, [note(nid, "webjwt", "signed in")])
    expect(page.locator(f'#list > li.notification[data-id="{nid}"]')).to_be_visible()
    expect(page.locator("#received-count")).to_have_text("1")  # the welcome frame is no card
    gw.wait_health("acknowledged", lambda h: h["inflight"] == 0)
    assert not page.problems, page.problems

    page.fill("#token", "not-a-token")
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(page.locator("#status")).to_have_attribute("data-close-code", "1008")


def test_a_page_from_another_origin_cannot_connect(gateway, page, tmp_path):
    """The gateway's own origin only, by default: a page served from another
    origin (here a second port) gets HTTP 403 before any WebSocket opens,
    counted in /healthz; listing that origin lets it in."""
    import http.server
    import threading
    other_port = free_port()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(REPO / "web"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", other_port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        gw = gateway()
        url = (f"http://127.0.0.1:{other_port}/test.html?server=ws://127.0.0.1:{gw.port}"
               "&user=elsewhere&autoconnect=1")
        page.goto(url)
        expect(page.locator("#status")).not_to_have_attribute("data-state", "connecting")
        gw.wait_health("the refusal counted", lambda h: h["refused"]["origin"] >= 1)
        assert gw.health()["connections"] == 0
        page.close()

        allowed = gateway(args=["--allowed-origins", f"http://127.0.0.1:{other_port}"])
        pg = page.context.browser.new_page()
        pg.goto(url.replace(str(gw.port), str(allowed.port)))
        connected(pg)
        pg.close()
    finally:
        httpd.shutdown()


def test_no_file_outside_the_web_root_is_served(gateway, tmp_path):
    """libwebsockets follows symbolic links: one in the web root that points
    outside it serves nothing."""
    import urllib.error
    import urllib.request
    root = tmp_path / "web"
    root.mkdir()
    (root / "inside.txt").write_text("inside")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (root / "leak.txt").symlink_to(secret)
    (root / "dir").symlink_to(tmp_path)
    gw = gateway(web_root=str(root))
    with urllib.request.urlopen(gw.http_url("/inside.txt"), timeout=5) as r:
        assert r.read() == b"inside"
    for path in ("/leak.txt", "/dir/secret.txt", "/../secret.txt", "/%2e%2e/secret.txt"):
        try:
            with urllib.request.urlopen(gw.http_url(path), timeout=5) as r:
                body = r.read()
            raise AssertionError(f"{path} served {body[:40]!r}")
        except urllib.error.HTTPError as e:
            assert e.code in (403, 404), (path, e.code)


def test_over_tls_the_page_connects_with_wss(kafka, topic, gateway, browser, tmp_path):
    """With --tls-cert-file the page is served over https:// and connects
    back over wss:// on the same port."""
    from test_security import self_signed, wait_plain_health
    cert, key = self_signed(tmp_path)
    health = free_port()
    gw = gateway(wait=False, args=["--tls-cert-file", cert, "--tls-key-file", key,
                                   "--health-listen", f"127.0.0.1:{health}"])
    wait_plain_health(gw, health)
    context = browser.new_context(ignore_https_errors=True)  # self-signed
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    try:
        pg.goto(f"https://127.0.0.1:{gw.port}/?user=tlsuser&autoconnect=1")
        expect(pg.locator("#server")).to_have_value(f"wss://127.0.0.1:{gw.port}")
        connected(pg)
        nid = f"tls-{token()}"
        produce(kafka.bootstrap, topic, [note(nid, "tlsuser", "over TLS")])
        expect(pg.locator(f'#list > li.notification[data-id="{nid}"]')).to_be_visible()
    finally:
        context.close()


def test_a_page_from_an_allowed_origin_may_publish_and_others_may_not(gateway, browser, tmp_path):
    """CORS on the API: Chromium's preflight and POST from a page of an
    allowed origin get through; from another origin the browser blocks the
    answer."""
    import http.server
    import threading
    key = "cors-key-0123456789abcdef"
    keys = tmp_path / "keys"
    keys.write_text(f"frontend {key}\n")
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text("<!doctype html><title>frontend</title>")
    port = free_port()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    publish = """async ([url, key]) => {
        try {
            const r = await fetch(url, {method: "POST", body: JSON.stringify(
                {userId: "cors", message: "from the frontend"}), headers: {
                "Authorization": "Bearer " + key, "Content-Type": "application/json"}});
            return [r.status, await r.json()];
        } catch (e) { return ["blocked", String(e)]; }
    }"""
    try:
        allowed = gateway(args=["--api-keys-file", str(keys),
                                "--allowed-origins", f"http://127.0.0.1:{port}"])
        other = gateway(args=["--api-keys-file", str(keys)])
        pg = browser.new_page()
        pg.goto(f"http://127.0.0.1:{port}/page.html")
        status, body = pg.evaluate(publish, [allowed.http_url("/api/notifications"), key])
        assert status == 202 and len(body["ids"]) == 1, body
        status, _ = pg.evaluate(publish, [other.http_url("/api/notifications"), key])
        assert status == "blocked"
        pg.close()
    finally:
        httpd.shutdown()


def test_the_status_page_asks_for_a_key_then_shows_the_gateway(kafka, topic, gateway, page,
                                                              tmp_path):
    key = "status-key-0123456789abcdef"
    keys = tmp_path / "keys"
    keys.write_text(f"operator {key}\n")
    gw = gateway(args=["--api-keys-file", str(keys)])
    gw.wait_assigned()
    produce(kafka.bootstrap, topic, [note(f"st-{token()}", "away", "for later")])
    page.goto(gw.http_url("/status"))
    expect(page.locator("#keyform")).to_be_visible()  # /status.json said 401
    page.fill("#key", key)
    page.click("#keyform button")
    expect(page.locator("#keyform")).to_be_hidden()
    expect(page.locator("#state")).to_have_text("ok")
    expect(page.locator("#tile-stored .sub")).to_have_text("1 since start")
    expect(page.locator("#tile-partitions .value")).to_have_text("3")
    expect(page.locator("#tile-lag .sub")).to_have_text("p0: 0, p1: 0, p2: 0", timeout=15000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "status.png"), full_page=True, animations="disabled")
    # The browser logs the first answer, 401, which is what asked for the key.
    assert [p for p in page.problems if "status of 401" not in p] == [], page.problems


def test_a_missing_page_is_a_plain_404_with_nothing_else_to_load(gateway, page):
    """libwebsockets' 404 page links /error.css, which is not there: the
    browser made a second, failed request. The gateway's own 404 loads
    nothing more; under the API, a 404 is JSON."""
    gw = gateway()
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    response = page.goto(gw.http_url("/no-such-page.html"))
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    assert requested == [gw.http_url("/no-such-page.html")], requested
    api = page.request.get(gw.http_url("/api/no-such-thing"))
    assert api.status == 404 and api.json() == {"error": "no such path"}
