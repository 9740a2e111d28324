"""The command-line producer (build/producer) against a real Kafka broker.

Each test runs the binary as a person would, with flags, standard input and
environment, then reads the topic back with a confluent_kafka Consumer and
checks key, value, ids and timestamps. Set PRODUCER_BIN to test another
binary.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone

import pytest

from conftest import PRODUCER_BIN
from servers import REPO, free_port

PRODUCER = str(PRODUCER_BIN)

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module", autouse=True)
def producer_built():
    assert os.path.isfile(PRODUCER) and os.access(PRODUCER, os.X_OK), (
        f"{PRODUCER} is not an executable file: run `make build/producer` first")


def run(args, *, stdin=None, env=None, timeout=60):
    """Runs the producer; stdin is bytes/str to feed, or None for /dev/null."""
    if isinstance(stdin, str):
        stdin = stdin.encode()
    full_env = dict(os.environ)
    full_env.pop("KAFKA_BROKERS", None)
    full_env.pop("KAFKA_TOPIC", None)
    full_env.update(env or {})
    return subprocess.run(
        [PRODUCER, *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        timeout=timeout,
    )


def ids_of(proc) -> list[str]:
    return proc.stdout.decode().split()


def consume(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list:
    """Reads COUNT messages from the start of every partition of TOPIC, then
    waits a little more to be sure there are no others."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-producer-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    try:
        md = c.list_topics(topic, timeout=10)
        parts = md.topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        msgs = []
        deadline = time.monotonic() + timeout
        while len(msgs) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            msgs.append(m)
        # Anything beyond COUNT is a bug too (a duplicate, a line that should
        # not have been sent).
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                msgs.append(m)
        assert len(msgs) == count, f"expected {count} messages in {topic}, got {len(msgs)}"
        return msgs
    finally:
        c.close()


def parse_ts(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def assert_recent(ts: str):
    assert ISO_MS.match(ts), ts
    age = abs((datetime.now(timezone.utc) - parse_ts(ts)).total_seconds())
    assert age < 120, f"timestamp {ts} is not the current time"


# --------------------------------------------------------------------------
# One notification from flags

def test_one_notification_from_flags(kafka, topic):
    p = run(["--brokers", kafka.bootstrap, "--topic", topic, "--user", "user1",
             "--message", "Your order has shipped", "--type", "order",
             "--data", '{"orderId": 42, "items": ["a", "b"]}'])
    assert p.returncode == 0, p.stderr.decode()
    ids = ids_of(p)
    assert len(ids) == 1 and UUID7.match(ids[0]), p.stdout
    assert p.stderr == b"", "a successful run should be silent on stderr"

    [m] = consume(kafka.bootstrap, topic, 1)
    assert m.key() == b"user1"
    value = json.loads(m.value())
    assert list(value) == ["id", "userId", "message", "timestamp", "type", "data"]
    assert value["id"] == ids[0]
    assert value["userId"] == "user1"
    assert value["message"] == "Your order has shipped"
    assert value["type"] == "order"
    assert value["data"] == {"orderId": 42, "items": ["a", "b"]}
    assert_recent(value["timestamp"])


def test_given_id_and_environment(kafka, topic):
    """--id is kept; KAFKA_BROKERS and KAFKA_TOPIC are read; short flags work."""
    p = run(["-u", "u-env", "-m", "héllo ✓", "--id", "notif-001"],
            env={"KAFKA_BROKERS": kafka.bootstrap, "KAFKA_TOPIC": topic})
    assert p.returncode == 0, p.stderr.decode()
    assert ids_of(p) == ["notif-001"]
    [m] = consume(kafka.bootstrap, topic, 1)
    value = json.loads(m.value())
    assert m.key() == b"u-env"
    assert value["id"] == "notif-001"
    assert value["message"] == "héllo ✓"
    assert "type" not in value and "data" not in value


def test_quiet_prints_no_ids(kafka, topic):
    p = run(["-b", kafka.bootstrap, "-t", topic, "-u", "u1", "-m", "x", "--quiet"])
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == b""
    consume(kafka.bootstrap, topic, 1)


# --------------------------------------------------------------------------
# Standard input

def test_stdin_lines_filled_and_kept(kafka, topic):
    lines = [
        '{"userId":"u1","message":"no id, no timestamp"}',
        "",
        '{"id":"given-7","userId":"u2","message":"given id","timestamp":"2023-10-01T12:00:00Z"}',
        '   ',
        '{"user_id":"u3","message":"snake case user","timestamp":1696161600123}',
        '{"userId":"u4","message":"offset time","timestamp":"2023-10-01T14:00:00.5+02:00",'
        '"type":"t","data":[1,{"x":null}],"extra":"ignored"}',
    ]
    # CRLF line ends and a last line without a newline are fine too.
    p = run(["-b", kafka.bootstrap, "-t", topic], stdin="\r\n".join(lines))
    assert p.returncode == 0, p.stderr.decode()
    printed = ids_of(p)
    assert len(printed) == 4 and len(set(printed)) == 4

    msgs = consume(kafka.bootstrap, topic, 4)
    by_user = {m.key().decode(): json.loads(m.value()) for m in msgs}
    assert set(by_user) == {"u1", "u2", "u3", "u4"}
    assert {v["id"] for v in by_user.values()} == set(printed)

    u1 = by_user["u1"]
    assert UUID7.match(u1["id"]), u1
    assert_recent(u1["timestamp"])
    assert u1["userId"] == "u1"

    assert by_user["u2"]["id"] == "given-7"
    assert by_user["u2"]["timestamp"] == "2023-10-01T12:00:00.000Z"

    u3 = by_user["u3"]
    assert u3["userId"] == "u3" and "user_id" not in u3
    assert u3["timestamp"] == "2023-10-01T12:00:00.123Z"
    assert UUID7.match(u3["id"])

    u4 = by_user["u4"]
    assert u4["timestamp"] == "2023-10-01T12:00:00.500Z"
    assert u4["type"] == "t" and u4["data"] == [1, {"x": None}]
    assert "extra" not in u4


def test_stdin_keeps_order_per_user(kafka, topic):
    n = 200
    lines = [json.dumps({"id": f"o-{i:04d}", "userId": f"ou{i % 3}", "message": str(i)})
             for i in range(n)]
    p = run(["-b", kafka.bootstrap, "-t", topic, "--stdin"], stdin="\n".join(lines) + "\n")
    assert p.returncode == 0, p.stderr.decode()
    assert sorted(ids_of(p)) == [f"o-{i:04d}" for i in range(n)]
    msgs = consume(kafka.bootstrap, topic, n)
    per_user: dict[str, list[tuple[int, int, str]]] = {}
    for m in msgs:
        per_user.setdefault(m.key().decode(), []).append(
            (m.partition(), m.offset(), json.loads(m.value())["id"]))
    for user, got in per_user.items():
        assert len({part for part, _, _ in got}) == 1, f"{user} spread over partitions"
        in_log_order = [i for _, _, i in sorted(got)]
        assert in_log_order == sorted(in_log_order), f"{user}'s notifications out of order"


def test_stdin_invalid_lines_reported_valid_ones_sent(kafka, topic):
    lines = [
        '{"userId":"u1","message":"fine"}',
        '{"userId":"u2","message":"also fine"}',
        '{"message":"who is this for?"}',
        'not json at all',
        '{"userId":"bad user","message":"x"}',
        '{"userId":"u3","message":"x","timestamp":"yesterday"}',
        '{"userId":"u4","message":"last one fine"}',
    ]
    p = run(["-b", kafka.bootstrap, "-t", topic, "-"], stdin="\n".join(lines) + "\n")
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert 'stdin:3: "userId" is missing' in err
    assert "stdin:4: not valid JSON" in err
    assert "stdin:5:" in err and "stdin:6:" in err and '"timestamp"' in err
    assert "stdin:1:" not in err and "stdin:7:" not in err
    assert "4 of 7 input lines invalid" in err
    assert len(ids_of(p)) == 3
    msgs = consume(kafka.bootstrap, topic, 3)
    assert sorted(m.key() for m in msgs) == [b"u1", b"u2", b"u4"]


def test_stdin_too_long_line(kafka, topic):
    big = json.dumps({"userId": "u1", "message": "x" * 70000})
    ok = '{"userId":"u2","message":"ok"}'
    p = run(["-b", kafka.bootstrap, "-t", topic], stdin=f"{big}\n{ok}\n")
    assert p.returncode == 2
    assert "stdin:1: line is longer than 65536 bytes" in p.stderr.decode()
    [m] = consume(kafka.bootstrap, topic, 1)
    assert m.key() == b"u2"


def test_sigint_stops_reading_and_flushes(kafka, topic):
    p = subprocess.Popen([PRODUCER, "-b", kafka.bootstrap, "-t", topic],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(b'{"userId":"s1","message":"before the signal"}\n')
        p.stdin.flush()
        # Its id is printed while stdin is still open: wait for it.
        ready, _, _ = select.select([p.stdout], [], [], 20)
        assert ready, "the delivered id was not printed while input was still open"
        first = p.stdout.readline().decode().strip()
        assert UUID7.match(first)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    assert out == b""
    [m] = consume(kafka.bootstrap, topic, 1)
    assert json.loads(m.value())["id"] == first


# --------------------------------------------------------------------------
# Generated notifications

def test_count_delivers_unique_time_ordered_ids(kafka, topic):
    n = 300
    p = run(["-b", kafka.bootstrap, "-t", topic, "--count", str(n), "--user", "load",
             "--users", "7", "--type", "load"])
    assert p.returncode == 0, p.stderr.decode()
    printed = ids_of(p)
    assert len(printed) == n and len(set(printed)) == n
    assert all(UUID7.match(i) for i in printed)

    msgs = consume(kafka.bootstrap, topic, n)
    values = [json.loads(m.value()) for m in msgs]
    assert {v["id"] for v in values} == set(printed)
    assert {m.key() for m in msgs} == {f"load-{k}".encode() for k in range(1, 8)}
    by_k = {}
    for m, v in zip(msgs, values):
        k = int(re.fullmatch(rf"Notification (\d+) of {n}", v["message"]).group(1))
        assert m.key().decode() == f"load-{(k - 1) % 7 + 1}"
        assert v["type"] == "load"
        by_k[k] = v["id"]
    assert sorted(by_k) == list(range(1, n + 1))
    ids_in_k_order = [by_k[k] for k in range(1, n + 1)]
    assert ids_in_k_order == sorted(ids_in_k_order), "ids are not time-ordered"


def test_count_survives_a_full_queue(kafka, topic):
    """A tiny local queue forces QUEUE_FULL: nothing may be dropped."""
    n = 500
    p = run(["-b", kafka.bootstrap, "-t", topic, "-n", str(n), "-u", "q",
             "-X", "queue.buffering.max.messages=5"])
    assert p.returncode == 0, p.stderr.decode()
    assert len(set(ids_of(p))) == n
    consume(kafka.bootstrap, topic, n)


# --------------------------------------------------------------------------
# Failures

def test_broker_down_fails_within_timeout(tmp_path):
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    p = run(["--brokers", f"127.0.0.1:{port}", "--timeout", "3", "--count", "3", "--user", "u1"],
            timeout=30)
    elapsed = time.monotonic() - t0
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert elapsed < 10, f"took {elapsed:.1f} s with --timeout 3"
    assert p.stdout == b""
    assert "3 of 3 notifications not delivered" in err
    assert "Message timed out" in err
    assert f"is the broker at 127.0.0.1:{port} running?" in err
    assert "Connection refused" in err


def test_help_mentions_every_option():
    p = run(["--help"])
    assert p.returncode == 0
    text = p.stdout.decode()
    for word in ["--user", "--message", "--type", "--id", "--data", "--stdin", "--count",
                 "--users", "--brokers", "--topic", "--timeout", "-X KEY=VALUE", "--quiet",
                 "--verbose", "--help", "--version", "KAFKA_BROKERS", "KAFKA_TOPIC",
                 "localhost:9092", "notifications", "Exit status", "Examples"]:
        assert word in text, f"--help does not mention {word}"
    assert p.stderr == b""


def test_version():
    p = run(["--version"])
    assert p.returncode == 0
    assert re.match(rb"producer \d+\.\d+\.\d+ \(librdkafka ", p.stdout)


@pytest.mark.parametrize("args, says", [
    (["--bogus"], "unknown or ambiguous option --bogus"),
    (["-Z"], "unknown option -Z"),
    (["--user"], "option --user needs a value"),
    (["--message", "hi"], "--message needs its audience: --user, --user-ids, --room or --broadcast"),
    (["--room", "a", "--user", "u", "--message", "hi"], "give one"),
    (["--room", "a b", "--message", "hi"], "is not a room name"),
    (["--user-ids", "a,b,a", "--message", "hi"], "names 'a' twice"),
    (["--user", "u", "--message", "m", "--ttl", "0"], "--ttl '0'"),
    (["--user", "u", "--message", "m", "--ttl", "5", "--expires-at", "9"], "give one"),
    (["--user", "u", "--message", "m", "--expires-at", "soon"], "is not a time"),
    (["--ttl", "5"], "--ttl goes with --message or --count"),
    (["--user", "u1"], "--user goes with --message or --count"),
    (["--user", "a b", "--message", "hi"], "is not a user id"),
    (["--count", "0", "--user", "u"], "--count '0'"),
    (["--count", "3", "--user", "u", "--message", "m"], "cannot be combined"),
    (["--user", "u", "--message", "m", "--data", "{nope"], "--data is not valid JSON"),
    (["--user", "u", "--message", "m", "--timeout", "soon"], "--timeout 'soon'"),
    (["--user", "u", "--message", "m", "--topic", "no/slash"], "not a Kafka topic name"),
    (["--user", "u", "--message", "m", "stray"], "unexpected argument 'stray'"),
    (["--user", "u", "--message", "m", "-X", "no.such.property=1"],
     'No such configuration property: "no.such.property"'),
    (["--user", "u", "--message", "m", "-X", "linger.ms"], "-X needs KEY=VALUE"),
    (["--user", "u", "--message", "m", "-X", "acks=1"], "enable.idempotence"),
])
def test_bad_command_line_exits_2(args, says):
    p = run(["--brokers", "127.0.0.1:1", *args], timeout=10)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert says in err
    assert "--help" in err or "-X list" in err
    assert p.stdout == b""
