"""Identity on the real gateway, Kafka and store: with --auth jwt a
connection is the user its signed token names, given in the URL, an
Authorization header or the first message; every bad token is refused with
the close code docs/protocol.md gives; a token for one user reads and
acknowledges nothing of another's; a token that runs out closes its
connection (4001) and what it held stays stored."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time

import jwt as pyjwt
import pytest
import urllib.error
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import PRODUCER_BIN, produce

SECRET = "test-secret-0123456789abcdef0123456789"


def token(sub: str, secret: str = SECRET, ttl: float = 300, alg: str = "HS256", **claims) -> str:
    now = int(time.time())
    body = {"sub": sub, "iat": now, "exp": now + ttl, **claims}
    return pyjwt.encode(body, secret, algorithm=alg, headers=claims.pop("headers", None))


def hs256_by_hand(claims: dict, key: bytes) -> str:
    """An HS256 token keyed with any bytes (PyJWT refuses a PEM key as a
    secret, as it should; an attacker would not)."""
    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256"}).encode())
    signing = f"{header}.{b64(json.dumps(claims).encode())}"
    return f"{signing}.{b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())}"


def note(nid: str, user: str) -> dict:
    return {"id": nid, "userId": user, "message": f"for {user}", "timestamp": "2026-12-03T12:00:00Z"}


def jwt_gateway(gateway, **kw):
    args = kw.pop("args", [])
    return gateway(auth="jwt", env={"JWT_SECRET": SECRET}, args=args, **kw)


async def frames_until_closed(ws, ack: bool = True, timeout: float = 10) -> list[dict]:
    """Every frame until the server closes, acknowledging notifications."""
    got = []
    try:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                f = json.loads(raw)
                got.append(f)
                if ack and "message" in f:
                    await ws.send(json.dumps({"type": "ack", "id": f["id"]}))
    except websockets.ConnectionClosed:
        pass
    return got


async def receive(ws, count: int, timeout: float = 15, ack: bool = True) -> list[dict]:
    got = []
    async with asyncio.timeout(timeout):
        while len([f for f in got if "message" in f]) < count:
            f = json.loads(await ws.recv())
            got.append(f)
            if ack and "message" in f:
                await ws.send(json.dumps({"type": "ack", "id": f["id"]}))
    return got


async def closed_with(url: str, headers: dict | None = None, first: str | None = None) -> tuple:
    """Connects, sends FIRST if given, and returns the close (code, reason)."""
    async with websockets.connect(url, additional_headers=headers) as ws:
        if first is not None:
            await ws.send(first)
        await frames_until_closed(ws, timeout=15)
        return ws.close_code, ws.close_reason


def test_a_gateway_on_real_kafka_must_be_told_who_may_connect(gateway):
    gw = gateway(auth=None, wait=False)
    gw.proc.wait(timeout=10)
    assert gw.returncode == 2
    log = gw.log_text()
    assert "--auth is not set" in log and "--auth none" in log, log


def test_a_secret_on_the_command_line_is_refused(gateway):
    gw = gateway(auth="jwt", args=["--jwt-secret", SECRET], wait=False)
    gw.proc.wait(timeout=10)
    assert gw.returncode == 2
    assert "set JWT_SECRET in the environment" in gw.log_text()
    assert SECRET not in gw.log_text()


def test_tokens_in_the_url_a_header_or_the_first_message(kafka, topic, gateway):
    gw = jwt_gateway(gateway)
    base = f"ws://127.0.0.1:{gw.port}/"
    produce(kafka.bootstrap, topic, [note("t-1", "alice"), note("t-2", "alice"),
                                     note("t-3", "alice")])

    async def scenario():
        # ?token=, with the matching userId: a legacy client, no control frames.
        async with websockets.connect(f"{base}?userId=alice&token={token('alice')}") as ws:
            got = await receive(ws, 1)
            assert [f["id"] for f in got] == ["t-1"]
        # Authorization: Bearer (non-browser clients).
        async with websockets.connect(
                base, additional_headers={"Authorization": f"Bearer {token('alice')}"}) as ws:
            got = await receive(ws, 1)
            assert [f["id"] for f in got] == ["t-2"]
        # The first message: a welcome control frame, then notifications.
        async with websockets.connect(base) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token("alice")}))
            got = await receive(ws, 1)
            assert got[0] == {"type": "welcome", "userId": "alice"}
            assert [f["id"] for f in got if "message" in f] == ["t-3"]
    asyncio.run(scenario())
    assert "auth: jwt (HS256)" in gw.log_text()
    assert SECRET not in gw.log_text()


def test_bad_tokens_are_refused_with_their_close_codes(gateway, tmp_path):
    gw = jwt_gateway(gateway, args=["--auth-timeout", "1"])
    base = f"ws://127.0.0.1:{gw.port}/"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    none_token = pyjwt.encode({"sub": "alice", "exp": int(time.time()) + 300}, None,
                              algorithm="none")
    cases = {
        "forged": (token("alice", secret="another-secret-0123456789abcdef012345"), 1008),
        "expired": (token("alice", ttl=-120), 4001),
        "not yet valid": (token("alice", nbf=int(time.time()) + 600), 1008),
        "alg none": (none_token, 1008),
        "RS256 signed, gateway on HS256": (token("alice", secret=key, alg="RS256"), 1008),
        # HS256 keyed with a public key's bytes: refused like any other wrong key.
        "HS/RS confusion": (hs256_by_hand({"sub": "alice", "exp": int(time.time()) + 300},
                                          public_pem), 1008),
        "no sub": (pyjwt.encode({"exp": int(time.time()) + 300}, SECRET, algorithm="HS256"), 1008),
        "bad sub": (token("al ice"), 1008),
        "no exp": (pyjwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"), 1008),
    }

    async def scenario():
        for what, (tok, code) in cases.items():
            got = await closed_with(f"{base}?token={tok}")
            assert got[0] == code, f"{what}: closed with {got}"
            got = await closed_with(base, first=json.dumps({"type": "auth", "token": tok}))
            assert got[0] == code, f"{what} (first message): closed with {got}"
        # A userId that is not the token's user.
        code, reason = await closed_with(f"{base}?userId=bob&token={token('alice')}")
        assert (code, reason) == (1008, "userId is not the token's user (sub)")
        # No token at all: the first message must bring one, within --auth-timeout.
        started = time.monotonic()
        code, reason = await closed_with(f"{base}?userId=alice")
        assert code == 1008 and "auth" in reason and time.monotonic() - started < 5
        code, _ = await closed_with(base, first=json.dumps({"type": "ack", "id": "x"}))
        assert code == 1008
    asyncio.run(scenario())


def test_a_token_for_one_user_reads_and_acks_nothing_of_another(kafka, mongo, topic,
                                                                 mongo_db_name, gateway):
    gw = jwt_gateway(gateway)
    base = f"ws://127.0.0.1:{gw.port}/"
    produce(kafka.bootstrap, topic, [note("secret-1", "alice")])
    with mongo.client() as c:
        deadline = time.monotonic() + 15
        while c[mongo_db_name].notifications.count_documents({}) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)

    async def scenario():
        async with websockets.connect(f"{base}?token={token('bob')}") as ws:
            # Bob acknowledges alice's id and waits: nothing of alice's comes.
            await ws.send(json.dumps({"type": "ack", "id": "secret-1"}))
            produce(kafka.bootstrap, topic, [note("secret-2", "alice"), note("bobs", "bob")])
            got = await receive(ws, 1)
            assert [f["id"] for f in got] == ["bobs"]
        # Sixteen connections as bob leave alice's connection alone.
        conns = [await websockets.connect(f"{base}?token={token('bob')}") for _ in range(16)]
        async with websockets.connect(f"{base}?token={token('alice')}") as ws:
            got = await receive(ws, 2)
            assert sorted(f["id"] for f in got) == ["secret-1", "secret-2"]
        for c in conns:
            await c.close()
    asyncio.run(scenario())


def test_refresh_keeps_a_connection_and_expiry_closes_it_storing_what_it_held(
        kafka, mongo, topic, mongo_db_name, gateway):
    gw = jwt_gateway(gateway, args=["--jwt-leeway", "0"])
    base = f"ws://127.0.0.1:{gw.port}/"

    async def scenario():
        # Refreshed before its 3 s token ends: still open after 5 s.
        async with websockets.connect(f"{base}?token={token('rita', ttl=3)}") as ws:
            await asyncio.sleep(1.5)
            await ws.send(json.dumps({"type": "refresh", "token": token("rita", ttl=60)}))
            await asyncio.sleep(3.5)
            produce(kafka.bootstrap, topic, [note("r-1", "rita")])
            got = await receive(ws, 1)
            assert [f["id"] for f in got] == ["r-1"]
        # Not refreshed: closed with 4001 at expiry; its unacknowledged
        # notification goes back to the store.
        async with websockets.connect(f"{base}?token={token('rita', ttl=3)}") as ws:
            produce(kafka.bootstrap, topic, [note("r-2", "rita")])
            got = await frames_until_closed(ws, ack=False, timeout=10)
            assert [f["id"] for f in got] == ["r-2"]
            assert ws.close_code == 4001
        # A refresh for another user is refused.
        async with websockets.connect(f"{base}?token={token('rita')}") as ws:
            await ws.send(json.dumps({"type": "refresh", "token": token("mallory")}))
            await frames_until_closed(ws, timeout=10)
            assert ws.close_code == 1008
    asyncio.run(scenario())
    with mongo.client() as c:
        deadline = time.monotonic() + 10
        while not c[mongo_db_name].notifications.find_one({"id": "r-2", "userId": "rita"}):
            assert time.monotonic() < deadline, "r-2 was not stored when its token ran out"
            time.sleep(0.1)


@pytest.mark.parametrize("source", ["pem", "jwks"])
def test_rs256_and_es256_keys_from_a_pem_file_or_a_jwks(gateway, tmp_path, source):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    if source == "pem":
        path = tmp_path / "key.pem"
        path.write_bytes(ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        gw = gateway(auth="jwt", args=["--jwt-public-key-file", str(path)])
        good = [pyjwt.encode({"sub": "erin", "exp": int(time.time()) + 300}, ec_key,
                             algorithm="ES256")]
        bad = [pyjwt.encode({"sub": "erin", "exp": int(time.time()) + 300}, rsa_key,
                            algorithm="RS256")]
    else:
        keys = []
        for kid, k in (("r1", rsa_key), ("e1", ec_key)):
            jwk = json.loads(pyjwt.algorithms.get_default_algorithms()[
                "RS256" if kid == "r1" else "ES256"].to_jwk(k.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig"})
        path = tmp_path / "jwks.json"
        path.write_text(json.dumps({"keys": keys}))
        gw = gateway(auth="jwt", args=["--jwks-file", str(path)])
        claims = {"sub": "erin", "exp": int(time.time()) + 300}
        good = [pyjwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "r1"}),
                pyjwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "e1"})]
        bad = [pyjwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "e1"}),
               pyjwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "r9"})]
    base = f"ws://127.0.0.1:{gw.port}/"

    async def scenario():
        for t in good:
            async with websockets.connect(base) as ws:
                await ws.send(json.dumps({"type": "auth", "token": t}))
                assert json.loads(await ws.recv()) == {"type": "welcome", "userId": "erin"}
        for t in bad:
            assert (await closed_with(f"{base}?token={t}"))[0] == 1008
    asyncio.run(scenario())


def test_the_producer_mints_a_token_the_gateway_accepts(kafka, topic, gateway):
    gw = jwt_gateway(gateway)
    run = subprocess.run([str(PRODUCER_BIN), "--token-for", "pat", "--token-ttl", "60"],
                         capture_output=True, text=True, env={"JWT_SECRET": SECRET}, timeout=10)
    assert run.returncode == 0, run.stderr
    produce(kafka.bootstrap, topic, [note("p-1", "pat")])

    async def scenario():
        async with websockets.connect(
                f"ws://127.0.0.1:{gw.port}/?token={run.stdout.strip()}") as ws:
            assert [f["id"] for f in await receive(ws, 1)] == ["p-1"]
    asyncio.run(scenario())
    refused = subprocess.run([str(PRODUCER_BIN), "--token-for", "pat"], capture_output=True,
                             text=True, env={}, timeout=10)
    assert refused.returncode == 2 and "JWT_SECRET" in refused.stderr


def test_one_address_cannot_take_every_slot(gateway):
    """--max-connections-per-address holds for one address while another
    still connects; behind a trusted proxy the X-Forwarded-For address is
    the one counted; --connect-rate-per-address paces new connections."""
    gw = gateway(max_connections_per_address=3, connect_rate_per_address=1000,
                 connect_burst_per_address=1000, args=["--trusted-proxies", "127.0.0.9"])
    url = f"ws://127.0.0.1:{gw.port}/?userId=u"

    async def scenario():
        held = [await websockets.connect(url) for _ in range(3)]
        async with websockets.connect(url) as ws:
            await frames_until_closed(ws)
            assert (ws.close_code, ws.close_reason) == (
                1013, "too many connections from this address, try again later")
        # Another address (loopback has them all) still gets in.
        async with websockets.connect(url, local_addr=("127.0.0.2", 0)) as ws:
            await asyncio.sleep(0.3)
            assert ws.close_code is None
        # From the trusted proxy, each forwarded client has its own three.
        proxied = []
        for client in ("198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.2"):
            proxied.append(await websockets.connect(
                url, local_addr=("127.0.0.9", 0), additional_headers={"X-Forwarded-For": client}))
        async with websockets.connect(url, local_addr=("127.0.0.9", 0),
                                      additional_headers={"X-Forwarded-For": "198.51.100.1"}) as ws:
            await frames_until_closed(ws)
            assert ws.close_code == 1013
        # An untrusted peer's X-Forwarded-For is ignored: it is its own address.
        async with websockets.connect(url, additional_headers={"X-Forwarded-For": "9.9.9.9"}) as ws:
            await frames_until_closed(ws)
            assert ws.close_code == 1013
        for c in held + proxied:
            await c.close()
    asyncio.run(scenario())
    assert gw.health()["refused"]["addressLimit"] == 3

    paced = gateway(connect_rate_per_address=1, connect_burst_per_address=2)

    async def too_fast():
        url = f"ws://127.0.0.1:{paced.port}/?userId=u"
        codes = []
        for _ in range(3):
            async with websockets.connect(url) as ws:
                try:
                    await asyncio.wait_for(ws.recv(), 0.3)
                except (asyncio.TimeoutError, websockets.ConnectionClosed):
                    pass
                codes.append(ws.close_code)
        assert codes == [None, None, 1013], codes
        await asyncio.sleep(1.1)  # a token back
        async with websockets.connect(url) as ws:
            await asyncio.sleep(0.2)
            assert ws.close_code is None
    asyncio.run(too_fast())
    assert paced.health()["refused"]["addressRate"] == 1


def test_a_signed_in_user_at_the_cap_replaces_the_oldest_connection(kafka, topic, gateway):
    """Whoever holds a user's connections cannot lock the user out: past
    --max-connections-per-user, a new signed-in connection closes the oldest
    with 4002, and the new one gets the user's notifications."""
    gw = jwt_gateway(gateway, args=["--max-connections-per-user", "2"])
    url = f"ws://127.0.0.1:{gw.port}/?token={token('lou')}"

    async def scenario():
        first, second = await websockets.connect(url), await websockets.connect(url)
        async with websockets.connect(url) as newest:
            await frames_until_closed(first, timeout=5)
            assert (first.close_code, first.close_reason) == (4002, "replaced by a newer connection")
            assert second.close_code is None
            produce(kafka.bootstrap, topic, [note("l-1", "lou")])
            assert [f["id"] for f in await receive(newest, 1)] == ["l-1"]
        await second.close()
    asyncio.run(scenario())


def raw_ws(port: int, query: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):  # byte by byte: what follows is frames
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s


def close_code(s: socket.socket) -> int | None:
    """Reads until the server's close frame (its code) or the socket closes."""
    data = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            return None
        if not chunk:
            return None
        data += chunk
        while len(data) >= 2:
            n = data[1] & 0x7F
            hdr = 2 + (2 if n == 126 else 8 if n == 127 else 0)
            n = int.from_bytes(data[2:hdr], "big") if hdr > 2 else n
            if len(data) < hdr + n:
                break
            if data[0] & 0x0F == 0x8:
                return int.from_bytes(data[hdr:hdr + 2], "big")
            data = data[hdr + n:]
    return None


def test_unmasked_and_oversized_client_frames_are_refused_at_once(gateway):
    gw = gateway()
    # RFC 6455 5.1: a client frame without a mask closes the connection.
    s = raw_ws(gw.port, "userId=raw")
    body = b'{"type":"ack","id":"x"}'
    s.sendall(bytes([0x81, len(body)]) + body)
    assert close_code(s) in (1002, None)
    s.close()
    # A frame that declares 1 GB: refused on its first bytes with 1009.
    s = raw_ws(gw.port, "userId=raw")
    s.sendall(bytes([0x81, 0x80 | 127]) + (1 << 30).to_bytes(8, "big") + b"\0\0\0\0" + b"x" * 100)
    assert close_code(s) == 1009
    s.close()
    # A userId too long, or one after a long argument, is refused.
    for query in ("pad=" + "p" * 3000 + "&userId=r%20w", "userId=" + "u" * 200):
        s = raw_ws(gw.port, query)
        assert close_code(s) == 1008, query
        s.close()
    # A CR in the URL cuts libwebsockets' reading of it (userId=a%0Db would be
    # user "a"): refused before the upgrade.
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    s.sendall(f"GET /?userId=a%0Db HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
              .encode())
    assert b" 400 " in s.recv(4096).split(b"\r\n")[0], "a cut URL was upgraded"
    s.close()
    assert gw.running


def self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for localhost and 127.0.0.1, and its key (PEM files)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def wait_plain_health(gw, port: int, timeout: float = 20) -> None:
    """Until /healthz answers 200 on the plain --health-listen PORT (the
    fixture's own check speaks plain HTTP to --port, which is TLS here)."""
    from servers import wait_http_ok
    wait_http_ok(f"http://127.0.0.1:{port}/healthz", timeout, why=lambda: gw.log_text()[-2000:])


def test_tls_serves_wss_and_https_and_refuses_plain_ws(kafka, topic, gateway, tmp_path):
    import ssl
    import urllib.request
    from servers import free_port
    cert, key = self_signed(tmp_path)
    health = free_port()
    gw = gateway(wait=False, args=["--tls-cert-file", cert, "--tls-key-file", key,
                                   "--health-listen", f"127.0.0.1:{health}"])
    wait_plain_health(gw, health)
    tls = ssl.create_default_context(cafile=cert)
    with urllib.request.urlopen(f"https://127.0.0.1:{gw.port}/healthz", context=tls,
                                timeout=5) as r:
        assert json.load(r)["status"] in ("ok", "degraded")
    # The plain health listener serves /healthz alone.
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{health}/test.html", timeout=5)
        raise AssertionError("the health listener served a file")
    except urllib.error.HTTPError as e:
        assert e.code == 404
    produce(kafka.bootstrap, topic, [note("w-1", "tina")])

    async def scenario():
        async with websockets.connect(f"wss://127.0.0.1:{gw.port}/?userId=tina", ssl=tls) as ws:
            assert [f["id"] for f in await receive(ws, 1)] == ["w-1"]
        with pytest.raises((OSError, websockets.InvalidHandshake, asyncio.TimeoutError)):
            async with asyncio.timeout(5):
                async with websockets.connect(f"ws://127.0.0.1:{gw.port}/?userId=tina"):
                    pass
    asyncio.run(scenario())


def test_kafka_credentials_come_from_a_file_or_the_environment_never_the_log(
        kafka, topic, gateway, gateway_group, tmp_path):
    """--kafka-config and KAFKA_PROP_* reach librdkafka for the gateway and
    the producer (the broker sees the file's client.id); the values are
    never logged."""
    conf = tmp_path / "kafka.conf"
    conf.write_text("# the gateway's credentials\nclient.id = gw-from-file\n"
                    "ssl.key.password=topsecret-1\n")
    gw = gateway(args=["--kafka-config", str(conf)],
                 env={"KAFKA_PROP_SSL_KEYSTORE_PASSWORD": "topsecret-2"})
    gw.wait_assigned()
    desc = kafka.admin().describe_consumer_groups([gateway_group])[gateway_group].result(10)
    assert {m.client_id for m in desc.members} == {"gw-from-file"}
    assert "topsecret" not in gw.log_text()

    producer_conf = tmp_path / "producer.conf"
    producer_conf.write_text("client.id=producer-from-file\n")
    run = subprocess.run([str(PRODUCER_BIN), "--brokers", kafka.bootstrap, "--topic", topic,
                          "--kafka-config", str(producer_conf), "--user", "kc", "--message", "hi"],
                         capture_output=True, text=True, timeout=30,
                         env={"KAFKA_PROP_LINGER_MS": "1"})
    assert run.returncode == 0, run.stderr
    producer_conf.write_text("linger.ms=not-a-number-topsecret\n")
    run = subprocess.run([str(PRODUCER_BIN), "--brokers", kafka.bootstrap, "--topic", topic,
                          "--kafka-config", str(producer_conf), "--user", "kc", "--message", "hi"],
                         capture_output=True, text=True, timeout=30, env={})
    assert run.returncode == 2 and "linger.ms" in run.stderr and "topsecret" not in run.stderr


def test_sighup_rereads_the_keys_and_the_denylist_and_closes_revoked_connections(
        gateway, tmp_path):
    import signal
    secret_file, denylist = tmp_path / "secret", tmp_path / "denied"
    secret_file.write_text(SECRET + "\n")
    denylist.write_text("# revoked\n")
    gw = gateway(auth="jwt", args=["--jwt-secret-file", str(secret_file),
                                   "--token-denylist", str(denylist)])
    base = f"ws://127.0.0.1:{gw.port}/"
    new_secret = "rotated-secret-0123456789abcdef01234567"

    def hup():
        os.kill(gw.pid, signal.SIGHUP)
        time.sleep(0.5)
        assert gw.running, "SIGHUP stopped the gateway"

    async def scenario():
        alice = await websockets.connect(f"{base}?token={token('alice', jti='t-1')}")
        bob = await websockets.connect(f"{base}?token={token('bob', jti='t-2')}")
        carl = await websockets.connect(f"{base}?token={token('carl', jti='t-3')}")
        denylist.write_text("t-1\nsub:carl\n")
        await asyncio.to_thread(hup)
        for ws in (alice, carl):
            await frames_until_closed(ws, timeout=5)
            assert (ws.close_code, ws.close_reason) == (4003, "the token is revoked")
        assert bob.close_code is None
        assert (await closed_with(f"{base}?token={token('alice', jti='t-1')}"))[0] == 4003
        # The secret rotated: tokens signed with the old one are refused,
        # connections made with it stay until their exp.
        secret_file.write_text(new_secret)
        await asyncio.to_thread(hup)
        assert (await closed_with(f"{base}?token={token('dan')}"))[0] == 1008
        async with websockets.connect(f"{base}?token={token('dan', secret=new_secret)}") as ws:
            await asyncio.sleep(0.3)
            assert ws.close_code is None
        assert bob.close_code is None
        # A deny-list that no longer reads: the one in force stays, and the log says why.
        denylist.write_text("sub:not a user\n")
        await asyncio.to_thread(hup)
        assert (await closed_with(
            f"{base}?token={token('carl', secret=new_secret)}"))[0] == 4003
        await bob.close()
    asyncio.run(scenario())
    assert "the keys and deny-list in force are kept" in gw.log_text()


def test_audience_and_issuer_are_checked_when_configured(gateway):
    gw = jwt_gateway(gateway, args=["--jwt-audience", "gateway", "--jwt-issuer", "https://id"])
    base = f"ws://127.0.0.1:{gw.port}/"

    async def scenario():
        assert (await closed_with(f"{base}?token={token('ann', aud='other', iss='https://id')}"))[0] == 1008
        assert (await closed_with(f"{base}?token={token('ann', aud='gateway', iss='https://x')}"))[0] == 1008
        assert (await closed_with(f"{base}?token={token('ann', iss='https://id')}"))[0] == 1008
        async with websockets.connect(
                f"{base}?token={token('ann', aud=['gateway', 'api'], iss='https://id')}") as ws:
            await asyncio.sleep(0.3)
            assert ws.close_code is None
    asyncio.run(scenario())


def test_a_proxy_header_names_the_client_only_from_a_trusted_proxy(gateway):
    """Behind --trusted-proxies the gateway reads a PROXY protocol header
    (v1 and v2) before the request: from 127.0.0.1 (trusted) the client it
    names is the one counted (a cap of one connection per address: two
    clients pass, the first one again is refused 1013); from 127.0.0.2 the
    header is ignored (two clients it names count as 127.0.0.2: the second
    is refused). A trusted proxy that sends no header is the client itself."""
    import socket
    import struct
    gw = gateway(max_connections_per_address=1, args=["--trusted-proxies", "127.0.0.1"])
    request = (f"GET /?userId=px HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def upgrade(source: str, prefix: bytes):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5,
                                     source_address=(source, 0))
        s.sendall(prefix + request)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
        except OSError:
            pass
        return head.split(b"\r\n", 1)[0], head.split(b"\r\n\r\n", 1)[-1], s

    def v1(client: str) -> bytes:
        return f"PROXY TCP4 {client} 127.0.0.1 40000 {gw.port}\r\n".encode()

    def v2(client: str) -> bytes:
        body = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack(
            "!HH", 40001, gw.port)
        return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body))
                + body)

    def refused_1013(s, early: bytes) -> bool:
        data = early
        s.settimeout(5)
        while len(data) < 4:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return len(data) >= 4 and data[0] & 0x0f == 0x8 and struct.unpack("!H", data[2:4])[0] == 1013

    held = []
    status, _, a = upgrade("127.0.0.1", v1("203.0.113.5"))
    assert status == b"HTTP/1.1 101 Switching Protocols", status
    held.append(a)
    status, _, b = upgrade("127.0.0.1", v2("203.0.113.6"))
    assert status == b"HTTP/1.1 101 Switching Protocols", status
    held.append(b)
    status, early, again = upgrade("127.0.0.1", v1("203.0.113.5"))  # the same client: at its cap
    assert status == b"HTTP/1.1 101 Switching Protocols" and refused_1013(again, early)
    again.close()
    status, _, plain = upgrade("127.0.0.1", b"")  # the proxy itself, no header: 127.0.0.1
    assert status == b"HTTP/1.1 101 Switching Protocols", status
    held.append(plain)
    # From an untrusted peer the header is ignored: both count as 127.0.0.2.
    status, _, untrusted = upgrade("127.0.0.2", v1("203.0.113.9"))
    assert status == b"HTTP/1.1 101 Switching Protocols", status
    held.append(untrusted)
    status, early, second = upgrade("127.0.0.2", v1("203.0.113.10"))
    assert status == b"HTTP/1.1 101 Switching Protocols" and refused_1013(second, early), \
        "a PROXY header from an untrusted peer was believed"
    second.close()
    assert gw.health()["refused"]["addressLimit"] == 2
    for s in held:
        s.close()
