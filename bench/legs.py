#!/usr/bin/env python3
"""What one cross-node delivery costs in each design of docs/adr/0001:
the store legs (a write, a per-user sorted read and a delete, as store and
wake needs for each remote delivery) on both MongoDB stand-ins, and one
Kafka leg (produce, then consume in another client), as forwarding needs.

    python3 bench/legs.py [--stored 10000] [--ops 300] [--rate 5000]

Prints latency p50/p99 and the server's CPU per operation (its process's
utime+stime over the run), and writes bench/results/<date>-legs.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "bench"))
import servers  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def store_legs(server, stored: int, ops: int) -> dict:
    with server.client() as c:
        coll = c.legs.notifications
        coll.create_index([("userId", 1), ("seq", 1)])
        frame = "x" * 200
        coll.insert_many([{"_id": f"u{i % 1000}:{i}", "userId": f"u{i % 1000}", "seq": i,
                           "frame": frame} for i in range(stored)])
        times = {"insert": [], "find": [], "delete": []}
        cpu0 = cpu_s(server.proc.pid)
        for i in range(ops):
            user, seq = f"remote{i % 50}", stored + i
            t = time.perf_counter()
            coll.insert_one({"_id": f"{user}:{seq}", "userId": user, "seq": seq,
                             "frame": frame})
            times["insert"].append(time.perf_counter() - t)
            t = time.perf_counter()
            list(coll.find({"userId": user, "seq": {"$gt": seq - 1}}).sort("seq", 1).limit(128))
            times["find"].append(time.perf_counter() - t)
            t = time.perf_counter()
            coll.delete_one({"_id": f"{user}:{seq}"})
            times["delete"].append(time.perf_counter() - t)
        cpu = cpu_s(server.proc.pid) - cpu0
    out = {op: {"p50_ms": pct(v, 0.5) * 1e3, "p99_ms": pct(v, 0.99) * 1e3}
           for op, v in times.items()}
    out["server_cpu_us_per_delivery"] = cpu / ops * 1e6
    out["delivery_p50_ms"] = statistics.median(
        a + b + c for a, b, c in zip(times["insert"], times["find"], times["delete"])) * 1e3
    return out


def kafka_leg(kafka, rate: int, seconds: float, workdir: Path) -> dict:
    """The load client's Kafka-only mode (bench/README.md): its producer
    and a librdkafka consumer, the gateway's defaults, linger.ms 0."""
    import run
    run.build_loadgen()
    topic = kafka.create_topic(f"legs-{uuid.uuid4().hex[:6]}", partitions=3)
    time.sleep(1)  # the new topic's leaders known to every broker connection
    cpu0 = cpu_s(kafka.proc.pid)
    r = run.loadgen(["--brokers", kafka.bootstrap, "--topic", topic, "--kafka-only",
                     "--users", "1000", "--rate", str(rate), "--duration", str(seconds),
                     "--id-prefix", f"legs{time.time_ns()}-", "--timeout", "30",
                     "--linger-ms", "0", "--start-delay", "1"], workdir / "loadgen.log")
    cpu = cpu_s(kafka.proc.pid) - cpu0
    return {"rate": rate, "records": r["count"], "p50_ms": r["latency_us"]["p50"] / 1e3,
            "p99_ms": r["latency_us"]["p99"] / 1e3,
            "broker_cpu_us_per_record": cpu / max(1, r["count"]) * 1e6,
            "load_client_cpu_us_per_record": r["loadgen_cpu_s"] / max(1, r["count"]) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stored", type=int, default=10000, help="notifications already stored")
    ap.add_argument("--ops", type=int, default=300, help="deliveries measured per store")
    ap.add_argument("--rate", type=int, default=5000, help="Kafka records per second")
    args = ap.parse_args()
    result = {"stored": args.stored, "ops": args.ops}
    with tempfile.TemporaryDirectory(prefix="legs-") as tmp:
        for name, cls in (("mongo-java-server", servers.MongoJavaServer),
                          ("FerretDB SQLite", servers.FerretDB)):
            server = cls().start(Path(tmp) / name.split()[0])
            try:
                result[name] = store_legs(server, args.stored, args.ops)
            finally:
                server.stop()
        kafka = servers.KafkaServer().start(Path(tmp) / "kafka")
        try:
            kafka_leg(kafka, args.rate, 5.0, Path(tmp))  # warms the broker's JIT up
            result["kafka"] = [kafka_leg(kafka, args.rate, 5.0, Path(tmp)) for _ in range(3)]
        finally:
            kafka.stop()
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "results" / f"{dt.datetime.now():%Y-%m-%dT%H%M%S}-legs.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
