#!/usr/bin/env python3
"""The gateway benchmark: real Kafka and mongo-java-server on loopback, the gateway
pinned to CPU 0, the C load client (bench/loadgen.c) pinned to CPU 1.

    python3 bench/run.py            # the full run (about 6 minutes here)
    python3 bench/run.py --quick    # smaller counts, for iterating
    python3 bench/run.py --only burst,paced --perf

Scenarios (each repeated; medians and spread are reported; P1..P9 are the
targets of issue 12, see bench/README.md):
  burst     P2  1,000 users online, 100,000 notifications as fast as the
                producer can: notifications per gateway CPU-second
  paced     P3  10,000/s open loop for 10 s, 1,000 users: end-to-end latency
            P9  (producer -> Kafka -> gateway -> client), the gateway's part
                (minus a Kafka-only run just before), notifications per
                gateway CPU-second
  idle      P1  RSS of a fresh gateway before/after 10,000 idle connections
  offline   P5  100,000 notifications to 10,000 offline users stored in
                mongo-java-server, then all of them back when users connect
  storerate P5  the same storing on the gateway's SQLite store
  replay1   P4  one user's 10,000 stored notifications, connect to last frame,
                on SQLite and on mongo-java-server
  storm     P6  10,000 users with 1 stored notification each connect at once
  fanout    P7  500 users x 2 connections, a burst: deliveries per CPU-second
  scale     P8  gateway CPU per delivery in a burst at 1k, 5k, 15k connections

Writes bench/results/<date>.json with every setting, and prints the targets
(P1..P9: median, range, spread, runs, target, met) and a table of every figure.
Needs build/consumer (`make all`); builds bench/build/loadgen itself.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path.insert(0, str(REPO / "tests" / "integration"))

import servers  # noqa: E402

LOADGEN_SRC = BENCH / "loadgen.c"
LOADGEN_BIN = BENCH / "build" / "loadgen"
GATEWAY_ENV_VARS = ("KAFKA_BROKERS", "KAFKA_TOPIC", "KAFKA_GROUP", "MONGODB_URI",
                    "MONGODB_DB", "PORT", "BIND_ADDRESS", "WEB_ROOT", "LOG_LEVEL", "AUTH", "JWT_SECRET",
                    "MAX_CONNECTIONS", "WINDOW", "ACK_TIMEOUT")
GATEWAY_CPU = "0"
LOADGEN_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets of issue 12. The peers' figures are in /work/shared/REFERENCE.md
# ("Figures", the run of 2026-12-02): 10x the best peer per CPU-second.
TARGET_KB_PER_CONN = 2.0            # P1: RSS per idle connection
TARGET_PER_CPU_S = 440_000          # P2: burst, 10 x the Node replica's 44.2k with acks
TARGET_P99_MS = 5.0                 # P3: paced 10k/s, end to end
TARGET_GATEWAY_P99_MS = 1.0         # P3: the gateway's part of that p99
TARGET_REPLAY1_MS = 150.0           # P4: one user's 10,000 stored, on SQLite
TARGET_STORE_PER_S = 30_000         # P5: stored durably per second, each store
TARGET_STORM_S = 2.0                # P6: 10,000 connect at once, 1 stored each
TARGET_FANOUT_X = 3.0               # P7: deliveries per CPU-second, x P2
TARGET_SCALE_PCT = 20.0             # P8: CPU per delivery, max/min across sizes
TARGET_PACED_PER_CPU_S = 200_000    # P9: paced 10k/s, 10 x the Node replica's 20.9k
STORE_NAMES = {"mongo": "mongo-java-server", "sqlite": "SQLite"}

# The store is mongo-java-server's memory backend: it indexes nothing (a
# find scans the collection, ~26 ms at 100,000 documents here) but deletes
# by _id in milliseconds. The replay's stored set is kept near 10,000 so
# that its figure is the gateway's, not the store's scans; storing is
# measured at full size.
FULL = dict(burst_count=100_000, burst_users=1000, burst_runs=3, burst_warmup=1,
            paced_rate=10_000, paced_seconds=10, paced_users=1000, paced_runs=3,
            paced_warmup_seconds=3,
            idle_conns=10_000, idle_runs=3,
            offline_count=100_000, offline_users=10_000, offline_runs=3,
            replay_count=10_000, replay_users=1_000, delete_wait_s=20,
            storerate_count=100_000, storerate_users=10_000, storerate_runs=3,
            replay1_count=10_000, replay1_runs=3, replay1_warmup=1,
            storm_users=10_000, storm_runs=3,
            fanout_users=500, fanout_conns_per_user=2, fanout_count=100_000, fanout_runs=3,
            fanout_warmup=1,
            scale_connections=[1_000, 5_000, 15_000], scale_count=100_000, scale_runs=3,
            scale_warmup=1, scale_rate=10_000, scale_seconds=10,
            cluster_rate=5_000, cluster_seconds=10, cluster_users=1000, cluster_runs=3)
QUICK = dict(burst_count=20_000, burst_users=1000, burst_runs=3, burst_warmup=1,
             paced_rate=10_000, paced_seconds=3, paced_users=1000, paced_runs=3,
             paced_warmup_seconds=1,
             idle_conns=2_000, idle_runs=3,
             offline_count=10_000, offline_users=1_000, offline_runs=3,
             replay_count=1_000, replay_users=100, delete_wait_s=10,
             storerate_count=20_000, storerate_users=1_000, storerate_runs=3,
             replay1_count=2_000, replay1_runs=3, replay1_warmup=1,
             storm_users=2_000, storm_runs=3,
             fanout_users=500, fanout_conns_per_user=2, fanout_count=20_000, fanout_runs=3,
             fanout_warmup=1,
             scale_connections=[1_000, 5_000, 15_000], scale_count=20_000, scale_runs=3,
             scale_warmup=0, scale_rate=10_000, scale_seconds=2,
             cluster_rate=5_000, cluster_seconds=3, cluster_users=1000, cluster_runs=3)
SCENARIOS = ("burst", "paced", "fanout", "scale", "idle", "offline", "storerate", "replay1", "storm",
             "cluster")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Building and small helpers

LOADGEN_CFLAGS = ["-O2", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wshadow"]


def build_loadgen() -> None:
    """cc -O2 bench/loadgen.c -> bench/build/loadgen, when missing or stale."""
    if LOADGEN_BIN.exists() and LOADGEN_BIN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return
    LOADGEN_BIN.parent.mkdir(parents=True, exist_ok=True)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "rdkafka"], check=True,
                           capture_output=True, text=True).stdout.split()
    cmd = ["cc", *LOADGEN_CFLAGS, "-o", str(LOADGEN_BIN), str(LOADGEN_SRC), *flags, "-pthread"]
    log("building " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def proc_cpu_s(pid: int) -> float:
    """utime + stime of PID (all threads) from /proc/PID/stat, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_sched_s(pid: int) -> float:
    """Run time of all of PID's threads from /proc/PID/task/*/schedstat (ns),
    as loadgen measures it: finer than the clock ticks of /proc/PID/stat."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    return total / 1e9


def proc_status_kb(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def meminfo_kb(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def sockstat() -> dict:
    """TCP line of /proc/net/sockstat: inuse, orphan, tw, alloc, mem (pages)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()[1:]
                return {parts[i]: int(parts[i + 1]) for i in range(0, len(parts), 2)}
    return {}


def run_out(cmd: list[str], merge_stderr: bool = False) -> str:
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                              text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"(unavailable: {e})"


def busy_processes(limit: int = 6) -> list[str]:
    """The busiest processes right now: other work sharing this 2-core box."""
    out = run_out(["ps", "-eo", "pcpu,etimes,comm", "--sort=-pcpu", "--no-headers"])
    return [" ".join(l.split()) for l in out.splitlines()[:limit]]


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def summary(values: list[float]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "spread_pct": None, "n": 0}
    med = statistics.median(vals)
    return {"median": med, "min": min(vals), "max": max(vals),
            "spread_pct": (max(vals) - min(vals)) / med * 100 if med else None,
            "n": len(vals), "values": vals}


def histogram_delta(before: dict | None, after: dict | None) -> dict | None:
    """What a Prometheus histogram (cumulative counts by upper bound, as read
    twice) gained in between, and its p99 interpolated linearly inside the
    bucket it falls in (as histogram_quantile does)."""
    if not before or not after:
        return None
    les = sorted(after)
    cum = [after[le] - before.get(le, 0) for le in les]
    total = cum[-1] if cum else 0
    out = {"le": [("+Inf" if le == float("inf") else le) for le in les], "count": cum, "n": total,
           "p99_ms": None, "p99_bucket_le_ms": None,
           "le_1ms_pct": (after.get(0.001, 0) - before.get(0.001, 0)) * 100 / total if total else None}
    if not total:
        return out
    rank = 0.99 * total
    prev_le, prev_c = 0.0, 0
    for le, c in zip(les, cum):
        if c >= rank:
            if le == float("inf"):
                p = prev_le  # beyond the last bound: its bound, as Prometheus reports
            else:
                p = prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c) if c > prev_c else le
            out["p99_ms"] = p * 1e3
            out["p99_bucket_le_ms"] = None if le == float("inf") else le * 1e3
            break
        prev_le, prev_c = le, c
    return out


# --------------------------------------------------------------------------
# The gateway under test

class Gateway:
    def __init__(self, binary: Path, workdir: Path, kafka, mongo, topic: str, name: str,
                 extra_args: list[str], store: str = "mongo"):
        self.name = name
        self.port = servers.free_port()
        self.group = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        self.db = f"bench_{name}_{uuid.uuid4().hex[:8]}"
        self.topic = topic
        self.log_path = workdir / f"gateway-{name}.log"
        # "mongo": a database of its own on the shared mongo-java-server;
        # "sqlite": the gateway's embedded SQLite store, a file in the work dir.
        self.store = store
        self.store_name = STORE_NAMES[store]
        self.sqlite_path = workdir / f"{self.db}.db" if store == "sqlite" else None
        store_args = (["--store", f"sqlite:{self.sqlite_path}"] if self.sqlite_path else
                      ["--mongodb-uri", mongo.uri, "--mongodb-db", self.db])
        self.args = [
            "--brokers", kafka.bootstrap, "--topic", topic, "--group", self.group,
            *store_args, "--port", str(self.port),
            "--bind", "127.0.0.1", "--web-root", str(REPO / "web"), "--log-level", "warn",
            # The load client connects with ?userId=, thousands of users from
            # one address: tokens and per-address limits are not what is measured.
            "--auth", "none", "--max-connections-per-address", "1000000",
            "--connect-rate-per-address", "1000000", "--connect-burst-per-address", "1000000",
            # What it holds is read from /status.json, on loopback only.
            "--ops-open",
            *extra_args,
        ]
        self.cmd = ["taskset", "-c", GATEWAY_CPU, str(binary), *self.args]
        env = {k: v for k, v in os.environ.items() if k not in GATEWAY_ENV_VARS}
        self.proc = servers.spawn(self.cmd, self.log_path, cwd=REPO, env=env)
        self.pid = self.proc.pid  # taskset execs the gateway: same pid

    @property
    def url_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 2.0) -> bytes | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            return body if resp.status == 200 else None
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def health(self, timeout: float = 2.0) -> dict | None:
        body = self.get("/status.json", timeout)
        try:
            return json.loads(body) if body else None
        except ValueError:
            return None

    def delivery_histogram(self) -> dict | None:
        """gateway_delivery_seconds from /metrics: {le: cumulative count}."""
        body = self.get("/metrics", timeout=5.0)
        if not body:
            return None
        le = {}
        for m in re.finditer(r'^gateway_delivery_seconds_bucket\{le="([^"]+)"\} (\d+)$',
                             body.decode(), re.M):
            le[float(m.group(1))] = int(m.group(2))
        return le or None

    def wait_ready(self, timeout: float = 60.0) -> dict:
        """Healthy and with partitions assigned (before that, produced
        notifications would wait for the group to form)."""
        deadline = time.monotonic() + timeout
        h = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n"
                                   + servers.tail(self.log_path))
            h = self.health()
            if h and h.get("partitions", 0) > 0:
                return h
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready in {timeout} s (last health {h}):\n"
                           + servers.tail(self.log_path))

    def wait_stored(self, target: int, timeout: float = 300.0) -> tuple[dict | None, float]:
        """Until the gateway's "stored" counter (notifications made durable
        since it started) reaches TARGET and nothing is in flight, waiting
        for the store or for commit; and when that was seen (monotonic)."""
        deadline = time.monotonic() + timeout
        h = None
        while time.monotonic() < deadline:
            h = self.health()
            now = time.monotonic()
            if (h and h["stored"] >= target and h["inflight"] == 0 and h["storeBacklog"] == 0
                    and h["kafkaPending"] == 0):
                return h, now
            time.sleep(0.02)
        log(f"gateway did not store {target} in {timeout} s: {h}")
        return h, time.monotonic()

    def wait_quiet(self, timeout: float = 30.0, connections: int | None = None) -> dict | None:
        """Nothing in flight, nothing waiting for the store or for commit."""
        deadline = time.monotonic() + timeout
        h = None
        while time.monotonic() < deadline:
            h = self.health()
            if (h and h["inflight"] == 0 and h["storeBacklog"] == 0 and h["kafkaPending"] == 0
                    and (connections is None or h["connections"] == connections)):
                return h
            time.sleep(0.05)
        log(f"gateway not quiet after {timeout} s: {h}")
        return h

    def sched_s(self) -> float:
        return proc_sched_s(self.pid)

    def stored(self, mongo) -> int:
        """Notifications in this gateway's offline store."""
        if self.sqlite_path:
            # WAL mode: a reader beside the gateway's writer is fine.
            with contextlib.closing(sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True,
                                                    timeout=10)) as db:
                return db.execute("SELECT count(*) FROM notifications").fetchone()[0]
        with mongo.client(serverSelectionTimeoutMS=5000) as c:
            return c[self.db]["notifications"].count_documents({})

    def rss_kb(self) -> int:
        return proc_status_kb(self.pid, "VmRSS")

    def stop(self) -> None:
        servers.terminate(self.proc, timeout=15)


# --------------------------------------------------------------------------
# The load client

def loadgen(args: list[str], log_path: Path, timeout: float = 600) -> dict:
    """Run bench/build/loadgen pinned to LOADGEN_CPU; its JSON result."""
    cmd = ["taskset", "-c", LOADGEN_CPU, str(LOADGEN_BIN), *args]
    with open(log_path, "a") as errf:
        errf.write("$ " + " ".join(cmd) + "\n")
        errf.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=errf, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen printed no result (exit {p.returncode}); see {log_path}:\n"
                           + servers.tail(log_path, 20))
    return json.loads(lines[-1])


class Bench:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.sizes = dict(QUICK if a.quick else FULL)
        self.workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
        self.kafka = None
        self.mongo = None
        self.gateways: list[Gateway] = []
        self.results: dict = {}
        self.lg_log = self.workdir / "loadgen.log"
        # Others rebuild build/ while we run: measure one fixed copy.
        self.gateway_bin = self.workdir / "consumer"
        shutil.copy2(a.gateway_bin, self.gateway_bin)
        self.gateway_sha256 = hashlib.sha256(self.gateway_bin.read_bytes()).hexdigest()
        self.gateway_mtime = dt.datetime.fromtimestamp(
            Path(a.gateway_bin).stat().st_mtime).isoformat(timespec="seconds")
        self.replaced: list[str] = []

    # -- servers
    def start_servers(self) -> None:
        t0 = time.monotonic()
        # The JVM's own defaults (G1, full JIT): not the tests' fast-start options.
        self.kafka = servers.KafkaServer(jvm_opts=()).start(self.workdir / "kafka")
        log(f"kafka {servers.KAFKA_VERSION} on {self.kafka.bootstrap} ({time.monotonic() - t0:.1f} s)")
        # The JVM's defaults here too, and room for 100,000 stored.
        self.mongo = servers.MongoJavaServer(heap="2g", jvm_opts=()).start(
            self.workdir / "mongo-java-server")
        log(f"mongo-java-server {servers.MONGO_JAVA_SERVER_VERSION} on {self.mongo.uri}")

    def new_gateway(self, name: str, partitions: int = 3, store: str = "mongo") -> Gateway:
        topic = f"bench-{name}-{uuid.uuid4().hex[:6]}"
        self.kafka.create_topic(topic, partitions=partitions)
        gw = Gateway(self.gateway_bin, self.workdir, self.kafka, self.mongo, topic, name,
                     ["--max-connections", str(self.a.max_connections)], store=store)
        self.gateways.append(gw)
        t0 = time.monotonic()
        h = gw.wait_ready()
        log(f"gateway '{name}' pid {gw.pid} on port {gw.port}, topic {topic}, store "
            f"{gw.store_name}: {h['partitions']} partitions after {time.monotonic() - t0:.1f} s")
        return gw

    def stop_gateway(self, gw: Gateway) -> None:
        gw.stop()
        if gw.sqlite_path:
            if not self.a.keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{gw.sqlite_path}{suffix}").unlink(missing_ok=True)
            return
        try:
            with self.mongo.client() as c:
                c.drop_database(gw.db)
        except Exception as e:  # noqa: BLE001 - cleanup only
            log(f"could not drop {gw.db}: {e}")

    def fill_store(self, gw: Gateway, users: int, count: int, user_prefix: str,
                   id_prefix: str, timeout: float = 600) -> dict:
        """COUNT notifications to USERS users none of whom is connected, until
        the gateway reports all of them durably stored and committed. The
        clock runs from the producer's first send (loadgen's CLOCK_MONOTONIC)
        to the first /status.json that shows them stored (polled every 20 ms);
        the gateway's CPU (schedstat) from just before the producer starts."""
        base = (gw.health() or {}).get("stored", 0)
        c0, o0 = gw.sched_s(), self.others_cpu()
        pr = loadgen(["--brokers", self.kafka.bootstrap, "--topic", gw.topic, "--no-connect",
                      "--users", str(users), "--user-prefix", user_prefix, "--burst", str(count),
                      "--id-prefix", id_prefix], self.lg_log)
        h, t_done = gw.wait_stored(base + count, timeout=timeout)
        c1, o1 = gw.sched_s(), self.others_cpu()
        t_start = pr["t_first_mono_ns"] / 1e9
        secs = t_done - t_start
        done = (h or {}).get("stored", base) - base
        return {"notifications": count, "users": users, "stored": done, "store_s": secs,
                "store_rate_per_s": done / secs if secs > 0 else None,
                "gateway_cpu_s": c1 - c0,
                "gateway_us_per_stored": (c1 - c0) * 1e6 / done if done else None,
                "store_server_cpu_s": o1["store"] - o0["store"] if gw.store == "mongo" else None,
                "kafka_cpu_s": o1["kafka"] - o0["kafka"], "health_after": h,
                "produce": {k: pr.get(k) for k in ("produced", "delivered", "produce_s")}}

    def wait_store_empty(self, gw: Gateway, timeout: float) -> tuple[int, float]:
        """Acknowledged notifications are deleted by the store worker after
        the last frame: until none is left (or TIMEOUT); what is left, when."""
        t0 = time.monotonic()
        left = gw.stored(self.mongo)
        while left and time.monotonic() - t0 < timeout:
            time.sleep(0.1)
            left = gw.stored(self.mongo)
        return left, time.monotonic() - t0

    def others_cpu(self) -> dict:
        return {"kafka": proc_cpu_s(self.kafka.proc.pid), "store": proc_cpu_s(self.mongo.proc.pid)}

    def lg(self, gw: Gateway, *args, timeout: float = 600) -> dict:
        o0 = self.others_cpu()
        w0 = time.monotonic()
        r = loadgen(["--url-base", gw.url_base, "--brokers", self.kafka.bootstrap,
                     "--topic", gw.topic, "--cpu-pid", str(gw.pid), *map(str, args)],
                    self.lg_log, timeout=timeout)
        o1 = self.others_cpu()
        r["wall_s"] = time.monotonic() - w0
        r["kafka_cpu_s"] = round(o1["kafka"] - o0["kafka"], 3)
        r["store_server_cpu_s"] = round(o1["store"] - o0["store"], 3)
        r["loadavg"] = loadavg()
        return r

    def after_run(self, gw: Gateway, r: dict, name: str) -> Gateway:
        """Checks that the run took the live path only; replaces a gateway
        that did not settle (so one stall does not spoil the other runs)."""
        h = gw.wait_quiet(timeout=30)
        r["health_after"] = h
        try:
            r["stored_after"] = gw.stored(self.mongo)
        except Exception as e:  # noqa: BLE001
            r["stored_after"] = f"unknown: {e}"
        if r.get("replayed") or r["stored_after"]:
            log(f"{name}: {r.get('replayed')} notifications came back from the store, "
                f"{r['stored_after']} still stored: some took the offline path")
        quiet = h and h["inflight"] == 0 and h["storeBacklog"] == 0 and h["kafkaPending"] == 0
        if not quiet or r["stored_after"]:
            log(f"{name}: the gateway did not settle (health {h}); replacing it for the next run")
            self.replaced.append(f"{name}: health {h}, stored {r['stored_after']}")
            r["gateway_replaced_after"] = True
            self.stop_gateway(gw)
            return self.new_gateway(f"{gw.name}-r{len(self.replaced)}")
        return gw

    # -- scenarios
    def burst(self, gw: Gateway) -> tuple[dict, Gateway]:
        s = self.sizes
        runs = []
        for i in range(s["burst_warmup"] + s["burst_runs"]):
            warm = i < s["burst_warmup"]
            r = self.lg(gw, "--users", s["burst_users"], "--burst", s["burst_count"],
                        "--id-prefix", f"burst{i}-", "--timeout", 60,
                        *(["--linger-ms", self.a.burst_linger_ms] if self.a.burst_linger_ms is not None else []))
            r["warmup"] = warm
            gw = self.after_run(gw, r, f"burst run {i}")
            per_cpu = r["unique"] / r["gateway_cpu_s"] if r["gateway_cpu_s"] else None
            r["per_gateway_cpu_s_ticks"] = per_cpu
            log(f"burst {'warm-up' if warm else 'run'} {i}: {r['unique']}/{r['count']} in "
                f"{r['duration_s']:.3f} s = {r['throughput_per_s']:,.0f}/s; gateway CPU "
                f"{r['gateway_sched_s']:.3f} s -> {r['per_gateway_cpu_s']:,.0f} per CPU-s; "
                f"p50 {r['latency_us']['p50'] / 1e3:.1f} ms, p99 {r['latency_us']['p99'] / 1e3:.1f} ms; "
                f"kafka CPU {r['kafka_cpu_s']} s")
            runs.append(r)
        m = [r for r in runs if not r["warmup"]]
        return gw, {
            "settings": {"users": s["burst_users"], "connections_per_user": 1,
                         "notifications": s["burst_count"], "warmup_runs": s["burst_warmup"],
                         "measured_runs": s["burst_runs"], "producer_linger_ms": m[0]["linger_ms"],
                         "message_bytes": m[0]["message_bytes"],
                         "avg_frame_bytes": m[0]["avg_frame_bytes"]},
            "runs": runs,
            "throughput_per_s": summary([r["throughput_per_s"] for r in m]),
            "per_gateway_cpu_s": summary([r["per_gateway_cpu_s"] for r in m]),
            "per_gateway_cpu_s_ticks": summary([r["per_gateway_cpu_s_ticks"] for r in m]),
            "gateway_cpu_s": summary([r["gateway_sched_s"] for r in m]),
            "kafka_cpu_s": summary([r["kafka_cpu_s"] for r in m]),
            "latency_p50_ms": summary([r["latency_us"]["p50"] / 1e3 for r in m]),
            "latency_p99_ms": summary([r["latency_us"]["p99"] / 1e3 for r in m]),
            "shortfall": sum(r["missing"] for r in m),
            "duplicates": sum(r["duplicates"] for r in m),
            "through_store": sum(r["replayed"] for r in m),
        }

    def paced(self, gw: Gateway) -> tuple[Gateway, dict]:
        """Open loop at paced_rate. The main figure: through the gateway with
        the producer's linger.ms 0, each run just after a Kafka-only run at
        the same rate (a librdkafka consumer in the load client, on a topic
        no gateway reads): the difference of the two p99s is the gateway's
        part (P3). Around each main run, /metrics' gateway_delivery_seconds
        is read twice. Beside it, for attribution (full runs only):
        linger.ms 5, 10x the users, the Kafka leg alone with linger.ms 5."""
        s = self.sizes
        ko_topic = self.kafka.create_topic(f"bench-kafka-only-{uuid.uuid4().hex[:6]}", partitions=3)
        linger0 = self.a.paced_linger_ms if self.a.paced_linger_ms is not None else 0
        u = s["paced_users"]
        primary, ko_primary = ("gateway", linger0, u), ("kafka-only", linger0, u)
        # The main pair first, interleaved (Kafka-only, then gateway), then the rest.
        groups = [[ko_primary, primary]]
        if not self.a.quick:
            groups += [[("gateway", 5, u)], [("gateway", 5, 10 * u)], [("kafka-only", 5, u)]]
        out = {"settings": {"rate_per_s": s["paced_rate"], "seconds": s["paced_seconds"],
                            "users": s["paced_users"], "measured_runs": s["paced_runs"],
                            "warmup_seconds": s["paced_warmup_seconds"],
                            "primary": f"gateway, linger.ms {linger0}",
                            "latency": "receive CLOCK_REALTIME minus the intended send time "
                                       "embedded by the open-loop producer",
                            "gateway_part": "p99 of each main run minus p99 of the Kafka-only run "
                                            "(same rate, linger.ms and users) just before it",
                            "per_gateway_cpu_s": "notifications received / the gateway's CPU seconds "
                                                 "(schedstat, all threads) from the first produce to "
                                                 "the last frame + 0.25 s",
                            "gateway_delivery_seconds": "the gateway's own histogram (/metrics): from "
                                                        "each record's Kafka timestamp (CreateTime, set "
                                                        "by the producer, ms) to its write to the "
                                                        "socket; p99 interpolated in its buckets"},
               "variants": {}}
        allruns: dict = {}
        n = 0
        plan = ([("warm-up", s["paced_warmup_seconds"])] if s["paced_warmup_seconds"] else []) + \
            [("run", s["paced_seconds"])] * s["paced_runs"]
        for group in groups:
            for kind, secs in plan:
                for target, linger, users in group:
                    n += 1
                    args = ["--users", users, "--rate", s["paced_rate"], "--duration", secs,
                            "--id-prefix", f"paced{n}-", "--timeout", 30, "--linger-ms", linger,
                            "--start-delay", max(1.0, users / 1000)]
                    if target == "kafka-only":
                        r = loadgen(["--brokers", self.kafka.bootstrap, "--topic", ko_topic,
                                     "--kafka-only", *map(str, args)], self.lg_log)
                    else:
                        h0 = gw.delivery_histogram() if (target, linger, users) == primary else None
                        r = self.lg(gw, *args)
                        if h0 is not None:
                            h1 = gw.delivery_histogram()
                            r["gateway_delivery_seconds"] = histogram_delta(h0, h1)
                        gw = self.after_run(gw, r, f"paced {kind} {n}")
                    r["warmup"] = kind == "warm-up"
                    lat = r["latency_us"]
                    gds = r.get("gateway_delivery_seconds") or {}
                    log(f"paced {target} linger {linger} {users} users {kind}: {r['unique']}/{r['count']} at "
                        f"{s['paced_rate']}/s: p50 {lat['p50'] / 1e3:.2f} ms, p99 {lat['p99'] / 1e3:.2f} ms, "
                        f"p99.9 {lat['p999'] / 1e3:.2f} ms, max {lat['max'] / 1e3:.1f} ms; producer max "
                        f"behind {r['producer_max_behind_ms']:.1f} ms; gateway CPU "
                        f"{r['gateway_sched_s']:.2f} s"
                        + (f" ({r['per_gateway_cpu_s']:,.0f} per CPU-s)" if target == "gateway" else "")
                        + (f"; /metrics p99 {gds['p99_ms']:.2f} ms" if gds.get("p99_ms") is not None else "")
                        + f"; load client CPU {r['loadgen_cpu_s']:.2f} s")
                    allruns.setdefault((target, linger, users), []).append(r)
        for (target, linger, users), runs in allruns.items():
            m = [r for r in runs if not r["warmup"]]
            v = {"target": target, "linger_ms": linger, "users": users, "runs": runs,
                 **{f"latency_{k}_ms": summary([r["latency_us"][k] / 1e3 for r in m])
                    for k in ("p50", "p90", "p99", "p999", "max")},
                 "gateway_cpu_per_s": summary([r["gateway_sched_s"] / r["duration_s"] for r in m
                                               if r["duration_s"]]),
                 "loadgen_cpu_per_s": summary([r["loadgen_cpu_s"] / r["duration_s"] for r in m
                                               if r["duration_s"]]),
                 "shortfall": sum(r["missing"] for r in m),
                 "through_store": sum(r["replayed"] for r in m)}
            if target == "gateway":
                v["per_gateway_cpu_s"] = summary([r["per_gateway_cpu_s"] for r in m])
            name = f"{target} linger {linger}" + (f" {users:,} users" if users != u else "")
            out["variants"][name] = v
            if (target, linger, users) == primary:
                out.update({k: v[k] for k in v if k.startswith("latency_")
                            or k in ("gateway_cpu_per_s", "per_gateway_cpu_s", "shortfall",
                                     "through_store")})
                gds = [r.get("gateway_delivery_seconds") or {} for r in m]
                out["gateway_delivery_p99_ms"] = summary([g.get("p99_ms") for g in gds])
                out["gateway_delivery_le_1ms_pct"] = summary([g.get("le_1ms_pct") for g in gds])
        # P3's gateway part: each main run against the Kafka-only run just before it.
        gw_m = [r for r in allruns[primary] if not r["warmup"]]
        ko_m = [r for r in allruns[ko_primary] if not r["warmup"]]
        out["gateway_part_p99_ms"] = summary([(g["latency_us"]["p99"] - k["latency_us"]["p99"]) / 1e3
                                              for g, k in zip(gw_m, ko_m)])
        out["kafka_only_p99_ms"] = out["variants"][f"kafka-only linger {linger0}"]["latency_p99_ms"]
        return gw, out

    def cluster(self) -> dict:
        """Two gateways (docs/adr/0001) on a one-partition topic, so that one
        (a) consumes everything: users on a get it locally, users on b only
        through b's inbox, one more Kafka leg. Paced at cluster_rate, each
        run of each kind after a Kafka-only run (the load client's own
        consumer) at the same rate; gateway CPU is both gateways' summed."""
        s = self.sizes
        topic = f"bench-cluster-{uuid.uuid4().hex[:6]}"
        self.kafka.create_topic(topic, partitions=1)
        ko_topic = self.kafka.create_topic(f"bench-cluster-ko-{uuid.uuid4().hex[:6]}", partitions=1)
        extra = ["--max-connections", str(self.a.max_connections)]
        a = Gateway(self.gateway_bin, self.workdir, self.kafka, self.mongo, topic, "cluster-a",
                    extra + ["--node-id", "bench-a"])
        self.gateways.append(a)
        a.wait_ready()
        b = Gateway(self.gateway_bin, self.workdir, self.kafka, self.mongo, topic, "cluster-b",
                    extra + ["--node-id", "bench-b", "--group", a.group, "--mongodb-db", a.db])
        self.gateways.append(b)
        deadline = time.monotonic() + 60
        while True:  # b is up, has read presence and joined its groups (no partition)
            hs = [gw.health() for gw in (a, b)]
            if all(h and h["cluster"]["ready"] and h["cluster"]["peers"] == 1 for h in hs):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the two gateways did not settle: {hs}")
            time.sleep(0.2)
        out = {"settings": {"rate_per_s": s["cluster_rate"], "seconds": s["cluster_seconds"],
                            "users": s["cluster_users"], "runs": s["cluster_runs"],
                            "topic_partitions": 1,
                            "local": "users connected to a, which consumes the topic",
                            "cross_node": "users connected to b: a forwards each to b's inbox",
                            "cpu": "schedstat of both gateways, all threads, per notification "
                                   "delivered"}}
        runs: dict = {"kafka-only": [], "local": [], "cross-node": []}
        n = 0
        for i in range(s["cluster_runs"] + 1):  # the first of each: a warm-up
            for kind in ("kafka-only", "local", "cross-node"):
                n += 1
                args = ["--users", s["cluster_users"], "--rate", s["cluster_rate"],
                        "--duration", s["cluster_seconds"], "--id-prefix", f"cl{n}-",
                        "--timeout", 30, "--linger-ms", 0, "--start-delay", 1.0]
                if kind == "kafka-only":
                    r = loadgen(["--brokers", self.kafka.bootstrap, "--topic", ko_topic,
                                 "--kafka-only", *map(str, args)], self.lg_log)
                else:
                    gw = a if kind == "local" else b
                    c0 = a.sched_s() + b.sched_s()
                    r = self.lg(gw, *args)
                    r["gateways_cpu_s"] = a.sched_s() + b.sched_s() - c0
                    a.wait_quiet()
                    b.wait_quiet()
                lat = r["latency_us"]
                log(f"cluster {kind} run {i}: {r['unique']}/{r['count']}, p50 "
                    f"{lat['p50'] / 1e3:.2f} ms, p99 {lat['p99'] / 1e3:.2f} ms"
                    + (f", gateways {r['gateways_cpu_s']:.2f} CPU-s" if kind != "kafka-only" else ""))
                if i:
                    runs[kind].append(r)
        for kind, rs in runs.items():
            v = {f"latency_{k}_ms": summary([r["latency_us"][k] / 1e3 for r in rs])
                 for k in ("p50", "p99", "p999", "max")}
            if kind != "kafka-only":
                v["us_per_delivery"] = summary([r["gateways_cpu_s"] / r["unique"] * 1e6
                                                for r in rs if r["unique"]])
                v["missing"] = sum(r["missing"] for r in rs)
            out[kind] = v
        for gw in (b, a):
            self.stop_gateway(gw)
        return out

    def idle(self) -> dict:
        s = self.sizes
        n = s["idle_conns"]
        runs = []
        for i in range(s["idle_runs"]):
            gw = self.new_gateway(f"idle{i}")
            time.sleep(1.0)
            gw.wait_quiet(connections=0)
            rss0 = gw.rss_kb()
            sock0 = sockstat()
            slab0 = meminfo_kb("Slab")
            cmd = ["taskset", "-c", LOADGEN_CPU, str(LOADGEN_BIN), "--url-base", gw.url_base,
                   "--users", str(n), "--user-prefix", "idle-", "--idle"]
            with open(self.lg_log, "a") as errf:
                errf.write("$ " + " ".join(cmd) + "\n")
                errf.flush()
                p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=errf, text=True)
                first = json.loads(p.stdout.readline() or "{}")
                # Each connect asks the store for the user's notifications:
                # wait until those answers are in and memory has settled.
                h = gw.wait_quiet(timeout=60, connections=n)
                prev = -1
                for _ in range(20):
                    time.sleep(0.5)
                    cur = gw.rss_kb()
                    if cur == prev:
                        break
                    prev = cur
                rss1 = gw.rss_kb()
                sock1 = sockstat()
                slab1 = meminfo_kb("Slab")
                hwm = proc_status_kb(gw.pid, "VmHWM")
                p.stdin.close()
                rest = p.stdout.read()
                p.wait(timeout=30)
            done = json.loads(rest.strip().splitlines()[-1]) if rest.strip() else {}
            conns = h["connections"] if h else None
            kb = (rss1 - rss0) / n
            kernel_pages = sock1.get("mem", 0) - sock0.get("mem", 0)
            # Both ends of every connection are on this box: 2n sockets.
            # Slab counts the socket structures themselves (whole machine,
            # so other work adds noise); sockstat's mem counts buffer pages.
            kernel_kb_per_socket = (slab1 - slab0 + kernel_pages * 4) / (2 * n)
            r = {"connections": n, "connected": first.get("connections"),
                 "connect_s": first.get("connect_s"), "gateway_connections": conns,
                 "rss_before_kb": rss0, "rss_after_kb": rss1, "vmhwm_kb": hwm,
                 "kb_per_connection": kb, "kernel_tcp_mem_pages_delta": kernel_pages,
                 "kernel_slab_kb_delta": slab1 - slab0,
                 "kernel_kb_per_socket_approx": kernel_kb_per_socket,
                 "loadgen_done": done}
            log(f"idle run {i}: {first.get('connections')} connections in "
                f"{first.get('connect_s', 0):.2f} s; RSS {rss0} -> {rss1} KB = {kb:.2f} KB per "
                f"connection (kernel slab+buffers ~{kernel_kb_per_socket:.2f} KB per socket, extra)")
            runs.append(r)
            self.stop_gateway(gw)
        return {
            "settings": {"connections": n, "users": n, "connections_per_user": 1,
                         "fresh_gateway_per_run": True, "runs": s["idle_runs"],
                         "measure": "VmRSS of the gateway from /proc/PID/status, before the "
                                    "connections and after they are open and settled"},
            "runs": runs,
            "kb_per_connection": summary([r["kb_per_connection"] for r in runs]),
            "connect_s": summary([r["connect_s"] for r in runs]),
            "kernel_kb_per_socket": summary([r["kernel_kb_per_socket_approx"] for r in runs]),
        }

    def offline(self) -> dict:
        """Store: COUNT notifications to USERS offline users, at full size.
        Replay: a smaller set, all users connect, until every one is back."""
        s = self.sizes
        n, users = s["offline_count"], s["offline_users"]
        rn, rusers = s["replay_count"], s["replay_users"]
        runs = []
        client = self.mongo.client(serverSelectionTimeoutMS=10000, socketTimeoutMS=600000)
        for i in range(s["offline_runs"]):
            # A fresh gateway and database per run: deletions still queued
            # from one run must not slow the next one's fetches.
            gw = self.new_gateway(f"offline{i}")
            coll = client[gw.db]["notifications"]
            try:
                run = {}
                # 1. Store (P5 on mongo-java-server): everyone offline. Clock:
                #    the producer's start to the gateway having stored and
                #    committed everything.
                f = self.fill_store(gw, users, n, f"off{i}-", f"off{i}-")
                stored = coll.count_documents({})
                t_store = f["store_s"]
                run.update({"stored_docs": stored, "stored_reported": f["stored"], "store_s": t_store,
                            "store_rate_per_s": stored / t_store,
                            "store_gateway_cpu_s": f["gateway_cpu_s"],
                            "store_gateway_us_per_stored": f["gateway_cpu_s"] * 1e6 / stored
                            if stored else None,
                            "store_server_cpu_s": f["store_server_cpu_s"],
                            "store_kafka_cpu_s": f["kafka_cpu_s"],
                            "store_health_after": f["health_after"], "produce": f["produce"]})
                # What one replay fetch costs on this store at this size.
                t = time.monotonic()
                got = len(list(coll.find({"userId": f"off{i}-7"}).sort("seq", 1).limit(128)))
                run["one_fetch_s_at_store_size"] = time.monotonic() - t
                log(f"offline store run {i}: {stored}/{n} stored for {users} offline users in "
                    f"{t_store:.1f} s = {stored / t_store:,.0f}/s (gateway CPU {f['gateway_cpu_s']:.2f} s = "
                    f"{run['store_gateway_us_per_stored'] or 0:.1f} us each, store "
                    f"server CPU {run['store_server_cpu_s']:.1f} s); one user's fetch ({got} docs) then took "
                    f"{run['one_fetch_s_at_store_size']:.2f} s")
                # Empty the store directly (the replay is measured on a
                # smaller set, see FULL): drop the collection and make the
                # gateway's index again.
                coll.drop()
                coll.create_index([("userId", 1), ("seq", 1)], name="userId_1_seq_1")

                # 2. Replay: RN notifications to RUSERS offline users, stored,
                #    then every user connects; the clock runs from the first
                #    connect to the last notification received.
                self.fill_store(gw, rusers, rn, f"rep{i}-", f"rep{i}-", timeout=300)
                before = coll.count_documents({})
                r = self.lg(gw, "--no-produce", "--users", rusers, "--user-prefix", f"rep{i}-",
                            "--count", rn, "--id-prefix", f"rep{i}-", "--timeout", 300, timeout=900)
                # Acknowledged ones are deleted by the store worker: wait at
                # most delete_wait_s and report the rate.
                t1 = time.monotonic()
                left0 = left = coll.count_documents({})
                while time.monotonic() - t1 < s["delete_wait_s"] and left:
                    time.sleep(0.5)
                    left = coll.count_documents({})
                waited = time.monotonic() - t1
                rate = r["unique"] / r["duration_s"] if r["duration_s"] else None
                run.update({"replay_stored_before": before, "replay": r, "replay_s": r["duration_s"],
                            "replay_rate_per_s": rate,
                            "replay_per_gateway_cpu_s": r["per_gateway_cpu_s"],
                            "replay_store_server_cpu_s": r["store_server_cpu_s"],
                            "left_in_store_at_last_frame": left0,
                            "left_in_store_after_wait": left, "delete_wait_s": waited,
                            "deletes_per_s_after_last_frame": (left0 - left) / waited if waited else None,
                            "store_empty_s_after_last_frame": waited if left == 0 else None})
                log(f"offline replay run {i}: {r['unique']}/{rn} back to {rusers} users "
                    f"({r['replayed']} marked replayed) in {r['duration_s']:.2f} s = {rate or 0:,.0f}/s; "
                    f"gateway CPU {r['gateway_sched_s']:.2f} s, store server CPU {r['store_server_cpu_s']:.1f} s; "
                    f"acked and still stored at the last frame: {left0}, {left} after {waited:.0f} s more")
                runs.append(run)
            finally:
                self.stop_gateway(gw)
        client.close()
        return {
            "settings": {"store": STORE_NAMES["mongo"],
                         "store_notifications": n, "store_users": users, "runs": s["offline_runs"],
                         "replay_notifications": rn, "replay_users": rusers,
                         "replay_sized_down_because": "the store server indexes nothing: every "
                         "read scans the collection; near 10,000 stored the figure is the gateway's",
                         "store_clock": "the producer's first send to the first /status.json (polled "
                                        "every 20 ms) counting all of them stored, with nothing in "
                                        "flight, no store backlog and every offset done",
                         "replay_clock": "from the first connect to the last notification "
                                         "received (each acked as it arrives)"},
            "runs": runs,
            "store_rate_per_s": summary([r["store_rate_per_s"] for r in runs]),
            "store_gateway_cpu_s": summary([r["store_gateway_cpu_s"] for r in runs]),
            "store_gateway_us_per_stored": summary([r["store_gateway_us_per_stored"] for r in runs]),
            "store_server_cpu_s": summary([r["store_server_cpu_s"] for r in runs]),
            "one_fetch_s_at_store_size": summary([r["one_fetch_s_at_store_size"] for r in runs]),
            "replay_rate_per_s": summary([r["replay_rate_per_s"] for r in runs]),
            "replay_s": summary([r["replay_s"] for r in runs]),
            "store_empty_s_after_last_frame": summary([r["store_empty_s_after_last_frame"] for r in runs]),
            "deletes_per_s_after_last_frame": summary([r["deletes_per_s_after_last_frame"] for r in runs]),
            "left_in_store_at_last_frame": summary([r["left_in_store_at_last_frame"] for r in runs]),
            "shortfall": sum(r["replay"]["missing"] for r in runs),
        }

    def storerate(self) -> dict:
        """P5 on SQLite: what `offline` measures on mongo-java-server (its
        store phase), on the gateway's embedded SQLite store (WAL,
        synchronous=FULL): a fresh gateway and file per run."""
        s = self.sizes
        n, users = s["storerate_count"], s["storerate_users"]
        runs = []
        for i in range(s["storerate_runs"]):
            gw = self.new_gateway(f"storerate{i}", store="sqlite")
            try:
                f = self.fill_store(gw, users, n, f"sr{i}-", f"sr{i}-")
                f["stored_in_file"] = gw.stored(self.mongo)
                f["file_bytes"] = sum(Path(f"{gw.sqlite_path}{x}").stat().st_size
                                      for x in ("", "-wal") if Path(f"{gw.sqlite_path}{x}").exists())
                log(f"storerate run {i} (SQLite): {f['stored_in_file']}/{n} stored for {users} offline "
                    f"users in {f['store_s']:.2f} s = {f['store_rate_per_s'] or 0:,.0f}/s; gateway CPU "
                    f"{f['gateway_cpu_s']:.2f} s = {f['gateway_us_per_stored'] or 0:.1f} us each")
                runs.append(f)
            finally:
                self.stop_gateway(gw)
        return {
            "settings": {"store": STORE_NAMES["sqlite"], "notifications": n, "users": users,
                         "runs": s["storerate_runs"], "fresh_gateway_and_file_per_run": True,
                         "sqlite": "the gateway's own store (--store sqlite:PATH): WAL, synchronous=FULL; "
                                   "its CPU is the gateway's",
                         "clock": "the producer's first send to the first /status.json (polled every "
                                  "20 ms) with all of them stored, nothing in flight, no store backlog "
                                  "and every offset done"},
            "runs": runs,
            "store_rate_per_s": summary([r["store_rate_per_s"] for r in runs]),
            "store_s": summary([r["store_s"] for r in runs]),
            "gateway_cpu_s": summary([r["gateway_cpu_s"] for r in runs]),
            "gateway_us_per_stored": summary([r["gateway_us_per_stored"] for r in runs]),
            "shortfall": sum(n - r["stored_in_file"] for r in runs),
        }

    def replay1(self) -> dict:
        """P4: one user with COUNT stored notifications connects; the clock
        runs from the connect to the last frame (each acked as it comes).
        On SQLite and on mongo-java-server: one gateway per store, a new
        user per run, the store emptied (acks deleted) between runs."""
        s = self.sizes
        n = s["replay1_count"]
        out = {"settings": {"notifications": n, "users": 1, "runs": s["replay1_runs"],
                            "warmup_runs": s["replay1_warmup"],
                            "clock": "loadgen's connect() to the last notification received",
                            "stores": [STORE_NAMES[x] for x in ("sqlite", "mongo")]}}
        for store in ("sqlite", "mongo"):
            gw = self.new_gateway(f"replay1-{store}", store=store)
            runs = []
            try:
                for i in range(s["replay1_warmup"] + s["replay1_runs"]):
                    warm = i < s["replay1_warmup"]
                    f = self.fill_store(gw, 1, n, f"r1{store}{i}-", f"r1{store}{i}-", timeout=300)
                    before = gw.stored(self.mongo)
                    r = self.lg(gw, "--no-produce", "--users", 1, "--user-prefix", f"r1{store}{i}-",
                                "--count", n, "--id-prefix", f"r1{store}{i}-", "--timeout", 120,
                                timeout=300)
                    left, waited = self.wait_store_empty(gw, 60)
                    r.update({"warmup": warm, "stored_before": before, "fill": f,
                              "replay_ms": r["duration_s"] * 1e3, "left_in_store_after_wait": left,
                              "store_empty_s_after_last_frame": waited})
                    log(f"replay1 {STORE_NAMES[store]} {'warm-up' if warm else 'run'} {i}: {before} "
                        f"stored for 1 user (stored at "
                        f"{f['store_rate_per_s'] or 0:,.0f}/s); {r['unique']}/{n} back in "
                        f"{r['replay_ms']:.1f} ms (connect {r['connect_s'] * 1e3:.1f} ms), gateway CPU "
                        f"{r['gateway_sched_s'] * 1e3:.1f} ms; store empty {waited:.1f} s later ({left} left)")
                    runs.append(r)
            finally:
                self.stop_gateway(gw)
            m = [r for r in runs if not r["warmup"]]
            out[store] = {"store": STORE_NAMES[store], "runs": runs,
                          "replay_ms": summary([r["replay_ms"] for r in m]),
                          "connect_ms": summary([r["connect_s"] * 1e3 for r in m]),
                          "gateway_cpu_ms": summary([r["gateway_sched_s"] * 1e3 for r in m]),
                          "stored_before": summary([r["stored_before"] for r in m]),
                          "shortfall": sum(r["missing"] for r in m)}
        return out

    def storm(self) -> dict:
        """P6: USERS users with one stored notification each connect at once;
        the clock runs from the first connect to the last of them received.
        On both stores; loadgen keeps its usual handshakes in flight
        (--storm-connect-parallel)."""
        s = self.sizes
        n = s["storm_users"]
        par = self.a.storm_connect_parallel
        out = {"settings": {"users": n, "connections": n, "stored_per_user": 1,
                            "runs": s["storm_runs"], "handshakes_in_flight": par,
                            "clock": "loadgen's first connect() to the last notification received "
                                     "(each acked as it comes)",
                            "stores": [STORE_NAMES[x] for x in ("sqlite", "mongo")]}}
        for store in ("sqlite", "mongo"):
            gw = self.new_gateway(f"storm-{store}", store=store)
            runs = []
            try:
                for i in range(s["storm_runs"]):
                    pre = f"sm{store}{i}-"
                    f = self.fill_store(gw, n, n, pre, pre, timeout=300)
                    before = gw.stored(self.mongo)
                    r = self.lg(gw, "--no-produce", "--users", n, "--user-prefix", pre, "--count", n,
                                "--id-prefix", pre, "--timeout", 120, "--connect-parallel", par,
                                timeout=300)
                    left, waited = self.wait_store_empty(gw, 60)
                    gw.wait_quiet(timeout=30, connections=0)
                    r.update({"stored_before": before, "fill": f, "left_in_store_after_wait": left,
                              "store_empty_s_after_last_frame": waited})
                    log(f"storm {STORE_NAMES[store]} run {i}: {n} users with 1 stored each "
                        f"({before} stored): {r['unique']}/{n} delivered {r['duration_s']:.2f} s after the "
                        f"first connect (all connected after {r['connect_s']:.2f} s); gateway CPU "
                        f"{r['gateway_sched_s']:.2f} s; store empty {waited:.1f} s later ({left} left)")
                    runs.append(r)
            finally:
                self.stop_gateway(gw)
            out[store] = {"store": STORE_NAMES[store], "runs": runs,
                          "storm_s": summary([r["duration_s"] for r in runs]),
                          "connect_s": summary([r["connect_s"] for r in runs]),
                          "gateway_cpu_s": summary([r["gateway_sched_s"] for r in runs]),
                          "shortfall": sum(r["missing"] for r in runs)}
        return out

    def fanout(self, gw: Gateway) -> tuple[Gateway, dict]:
        """P7: the burst with USERS users of K connections each; every
        connection acks what it gets; deliveries (one per connection) per
        gateway CPU-second."""
        s = self.sizes
        users, k, n = s["fanout_users"], s["fanout_conns_per_user"], s["fanout_count"]
        runs = []
        for i in range(s["fanout_warmup"] + s["fanout_runs"]):
            warm = i < s["fanout_warmup"]
            r = self.lg(gw, "--users", users, "--conns-per-user", k, "--user-prefix", "fan-",
                        "--burst", n, "--id-prefix", f"fan{i}-", "--timeout", 60,
                        *(["--linger-ms", self.a.burst_linger_ms] if self.a.burst_linger_ms is not None else []))
            r["warmup"] = warm
            gw = self.after_run(gw, r, f"fanout run {i}")
            log(f"fanout {'warm-up' if warm else 'run'} {i}: {r['unique']}/{n} notifications, "
                f"{r['deliveries']}/{n * k} deliveries to {users} users x {k} in {r['duration_s']:.3f} s; "
                f"gateway CPU {r['gateway_sched_s']:.3f} s -> {r['deliveries_per_gateway_cpu_s']:,.0f} "
                f"deliveries per CPU-s; per connection {r['conn_frames_min']}..{r['conn_frames_max']}")
            runs.append(r)
        m = [r for r in runs if not r["warmup"]]
        return gw, {
            "settings": {"users": users, "connections_per_user": k, "connections": users * k,
                         "notifications": n, "deliveries": n * k, "warmup_runs": s["fanout_warmup"],
                         "measured_runs": s["fanout_runs"], "producer_linger_ms": m[0]["linger_ms"],
                         "complete": "a notification counts once every connection of its user has it"},
            "runs": runs,
            "deliveries_per_gateway_cpu_s": summary([r["deliveries_per_gateway_cpu_s"] for r in m]),
            "per_gateway_cpu_s": summary([r["per_gateway_cpu_s"] for r in m]),
            "deliveries_per_s": summary([r["deliveries"] / r["duration_s"] for r in m if r["duration_s"]]),
            "gateway_cpu_s": summary([r["gateway_sched_s"] for r in m]),
            "shortfall": sum(r["deliveries_missing"] for r in m),
            "through_store": sum(r["replayed"] for r in m),
        }

    def scale(self, gw: Gateway) -> tuple[Gateway, dict]:
        """P8: the burst at each connection count (one user each): gateway CPU
        microseconds per delivery, and max/min across the counts."""
        s = self.sizes
        paced = self.a.scale_mode == "paced"
        n = s["scale_rate"] * s["scale_seconds"] if paced else s["scale_count"]
        out = {"settings": {"connections": s["scale_connections"], "connections_per_user": 1,
                            "mode": self.a.scale_mode,
                            **({"rate_per_s": s["scale_rate"], "seconds": s["scale_seconds"]}
                               if paced else {}),
                            "notifications": n, "warmup_runs": s["scale_warmup"],
                            "measured_runs": s["scale_runs"],
                            "measure": "gateway CPU (schedstat, all threads) from the first produce to "
                                       "the last frame + 0.25 s, per delivered notification"},
               "levels": {}}
        for conns in s["scale_connections"]:
            runs = []
            for i in range(s["scale_warmup"] + s["scale_runs"]):
                warm = i < s["scale_warmup"]
                load = (["--rate", s["scale_rate"], "--duration", s["scale_seconds"]] if paced
                        else ["--burst", n])
                r = self.lg(gw, "--users", conns, "--user-prefix", f"sc{conns}-", *load,
                            "--id-prefix", f"sc{conns}-{i}-", "--timeout", 60,
                            # the connect-time store lookups of every user first
                            "--start-delay", max(1.0, conns / 5000),
                            *(["--linger-ms", self.a.burst_linger_ms]
                              if self.a.burst_linger_ms is not None else []))
                r["warmup"] = warm
                gw = self.after_run(gw, r, f"scale {conns} run {i}")
                gw.wait_quiet(timeout=30, connections=0)
                log(f"scale {conns:,} connections {'warm-up' if warm else 'run'} {i}: "
                    f"{r['deliveries']}/{n} in {r['duration_s']:.3f} s; gateway CPU "
                    f"{r['gateway_sched_s']:.3f} s = {r['gateway_us_per_delivery']:.2f} us per delivery")
                runs.append(r)
            m = [r for r in runs if not r["warmup"]]
            out["levels"][str(conns)] = {
                "connections": conns, "runs": runs,
                "gateway_us_per_delivery": summary([r["gateway_us_per_delivery"] for r in m]),
                "deliveries_per_gateway_cpu_s": summary([r["deliveries_per_gateway_cpu_s"] for r in m]),
                "connect_s": summary([r["connect_s"] for r in m]),
                "shortfall": sum(r["deliveries_missing"] for r in m),
                "through_store": sum(r["replayed"] for r in m)}
        lv = list(out["levels"].values())
        meds = [v["gateway_us_per_delivery"]["median"] for v in lv]
        # max/min of the medians; and per run index, for a spread
        out["max_over_min"] = summary([max(x) / min(x) for x in zip(
            *[v["gateway_us_per_delivery"].get("values", []) for v in lv]) if min(x) > 0])
        out["max_over_min_of_medians"] = max(meds) / min(meds) if meds and min(meds) else None
        out["shortfall"] = sum(v["shortfall"] for v in lv)
        out["through_store"] = sum(v["through_store"] for v in lv)
        return gw, out

    def profile(self, gw: Gateway) -> dict:
        """perf record of the gateway during one extra burst."""
        s = self.sizes
        data = self.workdir / "perf.data"
        perf = subprocess.Popen(["perf", "record", "-F", "1999", "-g", "-p", str(gw.pid),
                                 "-o", str(data)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        r = self.lg(gw, "--users", s["burst_users"], "--burst", s["burst_count"],
                    "--id-prefix", "perf-", "--timeout", 60)
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        gw.wait_quiet()
        rep = run_out(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                       "--sort", "dso,symbol", "--percent-limit", "0.7", "-g", "none"])
        by_dso = run_out(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                          "--sort", "dso", "-g", "none"])
        # The gateway's own threads share its name: sort by thread id and
        # name them from /proc (main = the event loop).
        by_thread = run_out(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                             "--sort", "pid", "-g", "none"])
        by_thread_dso = run_out(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                                 "--sort", "pid,dso", "-g", "none", "--percent-limit", "1"])
        strip = lambda t: "\n".join(l for l in t.splitlines() if l.strip() and not l.startswith("#"))
        note = (f"thread {gw.pid} is the event loop (libwebsockets, hub); the other threads named "
                "like the binary are, in start order, the store worker and the Kafka consumer thread "
                "(JSON parse of each message); rdk:* are librdkafka's")
        return {"run": r, "top_symbols": strip(rep), "by_dso": strip(by_dso),
                "by_thread": strip(by_thread), "by_thread_and_dso": strip(by_thread_dso),
                "threads_note": note}

    # -- environment and settings
    def environment(self) -> dict:
        def first(pattern: str, text: str) -> str:
            m = re.search(pattern, text, re.M)
            return m.group(1).strip() if m else ""

        cpuinfo = Path("/proc/cpuinfo").read_text()
        consumer_defaults = json.loads(run_out([str(LOADGEN_BIN), "--dump-consumer-defaults"]) or "{}")
        dirty = run_out(["git", "-C", str(REPO), "status", "--porcelain"]).splitlines()
        return {
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": {"cpus": os.cpu_count(), "cpu_model": first(r"^model name\s*:\s*(.*)$", cpuinfo),
                     "mem_total": first(r"^MemTotal:\s*(.*)$", Path("/proc/meminfo").read_text()),
                     "kernel": platform.release(),
                     "loadavg_at_start": loadavg(),
                     "busiest_processes_at_start": self.busy_at_start},
            "versions": {
                "gateway": run_out([str(self.gateway_bin), "--version"]),
                "gateway_binary": {"copied_from": self.a.gateway_bin, "built": self.gateway_mtime,
                                   "built_from": self.a.gateway_built_from or "not given",
                                   "sha256": self.gateway_sha256},
                "git_head": run_out(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
                "git_uncommitted_files": dirty,
                "librdkafka": consumer_defaults.get("librdkafka"),
                "libwebsockets": run_out(["pkg-config", "--modversion", "libwebsockets"]),
                "libmongoc": run_out(["pkg-config", "--modversion", "libmongoc-1.0"]),
                "jansson": run_out(["pkg-config", "--modversion", "jansson"]),
                "kafka": servers.KAFKA_VERSION,
                "mongo-java-server": servers.MONGO_JAVA_SERVER_VERSION,
                "java": run_out(["java", "-version"], merge_stderr=True).splitlines()[:1],
                "cc": run_out(["cc", "--version"]).splitlines()[:1],
                "python": platform.python_version(),
            },
            "settings": {
                "same_box": "Kafka, mongo-java-server, the gateway and the load client all on this one "
                            f"{os.cpu_count()}-core machine, over loopback",
                "cpu_pinning": {"gateway": f"taskset -c {GATEWAY_CPU}",
                                "loadgen (producer thread + WebSocket receiver)": f"taskset -c {LOADGEN_CPU}",
                                "kafka, mongo-java-server": "not pinned: they share both cores"},
                "kafka": {"version": servers.KAFKA_VERSION, "mode": "KRaft, one node (broker+controller)",
                          "heap": "512m", "jvm_opts": "JVM defaults (no fast-start options)",
                          "topic_partitions": 3, "replication": 1,
                          "log_flush": "broker default (page cache, no fsync per message)"},
                "producer (loadgen, librdkafka)": {
                    "enable.idempotence": True, "acks": "all (implied)",
                    "linger.ms": {"burst": self.a.burst_linger_ms if self.a.burst_linger_ms is not None else 5,
                                  "paced": self.a.paced_linger_ms if self.a.paced_linger_ms is not None else 0},
                    "compression": "none", "key": "userId",
                    "users": "round robin over the scenario's users"},
                "gateway consumer (librdkafka)": {
                    "defaults_of_librdkafka": consumer_defaults,
                    "gateway_sets": {"enable.auto.offset.store": False, "enable.auto.commit": True,
                                     "auto.commit.interval.ms": 1000, "auto.offset.reset": "earliest",
                                     "session.timeout.ms": 10000, "heartbeat.interval.ms": 2000},
                    "extra -X": "none"},
                "gateway": {"args": "--log-level warn --auth none (per-address limits 1000000) --max-connections "
                                    f"{self.a.max_connections}; other flags at their defaults "
                                    "(window 256, ack-timeout 30 s)",
                            "binary": str(self.a.gateway_bin)},
                "store": {"server": f"mongo-java-server {servers.MONGO_JAVA_SERVER_VERSION}, "
                                    "memory backend, 2 GB heap, JVM defaults",
                          "write_concern": "j:true (set by the gateway's store)",
                          "sqlite": "storerate, and replay1 and storm beside mongo-java-server: the "
                                    "gateway's own SQLite store (--store sqlite:PATH in the work "
                                    "directory; WAL, synchronous=FULL), inside the gateway process",
                          "sqlite_library": run_out(["pkg-config", "--modversion", "sqlite3"])},
                "load client": {"acks": "every notification, as {\"type\":\"ack\",\"id\":...}; "
                                        "the acks of one read() go out in one write()",
                                "latency_histogram": "log-linear, 128 sub-buckets per power of two "
                                                     "(< 0.8% error), percentile = bucket top",
                                "gateway_cpu": "sum of the gateway's threads' run time from "
                                               "/proc/PID/task/*/schedstat (ns), from the first "
                                               "produce to the last frame + 0.25 s; utime+stime "
                                               "ticks reported beside it"},
            },
        }

    # -- the whole run
    def run(self) -> dict:
        only = set(self.a.only.split(",")) if self.a.only else set(SCENARIOS)
        self.busy_at_start = busy_processes()
        build_loadgen()
        self.start_servers()
        out = {"quick": self.a.quick, "sizes": self.sizes, "environment": self.environment()}
        t0 = time.monotonic()

        def attempt(name, fn):
            """A failed scenario is recorded and the others still run."""
            try:
                return fn()
            except Exception:  # noqa: BLE001
                log(f"{name} failed:\n{traceback.format_exc()}")
                out.setdefault("errors", {})[name] = traceback.format_exc()
                return None

        try:
            if only & {"burst", "paced", "fanout", "scale"} or self.a.perf:
                gw = self.new_gateway("live")
                for name in ("burst", "paced", "fanout", "scale"):
                    if name in only:
                        res = attempt(name, lambda: getattr(self, name)(gw))
                        if res:
                            gw, out[name] = res
                if self.a.perf:
                    res = attempt("profile", lambda: self.profile(gw))
                    if res:
                        out["profile"] = res
                self.stop_gateway(gw)
            for name in ("idle", "offline", "storerate", "replay1", "storm", "cluster"):
                if name in only:
                    res = attempt(name, getattr(self, name))
                    if res:
                        out[name] = res
        finally:
            out["targets"] = targets(out)
            out["elapsed_s"] = time.monotonic() - t0
            out["loadavg_at_end"] = loadavg()
            out["busiest_processes_at_end"] = busy_processes()
            out["workdir"] = str(self.workdir)
            out["gateways_replaced"] = self.replaced
        return out

    def stop(self) -> None:
        for gw in self.gateways:
            if gw.proc.poll() is None:
                gw.stop()
        if self.mongo:
            self.mongo.stop()
        if self.kafka:
            self.kafka.stop()


# --------------------------------------------------------------------------
# Report

def fmt(v, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def targets(res: dict) -> list[dict]:
    """The rows of issue 12's target table (P1..P9) from what ran: each with
    its median, min, max, spread and n, the target beside it, the store it
    ran on where one matters, and whether the median meets the target
    (None: no target, or not measured)."""
    rows = []

    def add(p, scenario, measure, s, unit, target=None, op=None, store=None, note=None):
        s = s or summary([])
        med = s["median"]
        met = None
        if target is not None and med is not None:
            met = med >= target if op == ">=" else med <= target
        rows.append({"p": p, "scenario": scenario, "measure": measure, "store": store, "unit": unit,
                     "median": med, "min": s["min"], "max": s["max"], "spread_pct": s["spread_pct"],
                     "n": s["n"], "values": s.get("values"),
                     "target": (f"{op} {target:,.0f}" if target >= 1000 else f"{op} {target:g}")
                     if target is not None else "reported",
                     "met": met, **({"note": note} if note else {})})

    if "idle" in res:
        i = res["idle"]
        add("P1", "idle", f"RSS per idle WebSocket connection at {i['settings']['connections']:,} connections",
            i["kb_per_connection"], "KB", TARGET_KB_PER_CONN, "<=")
    if "burst" in res:
        b = res["burst"]
        add("P2", "burst", f"notifications delivered and acked per gateway CPU-second "
                           f"({b['settings']['notifications']:,} burst to {b['settings']['users']:,} users)",
            b["per_gateway_cpu_s"], "/CPU-s", TARGET_PER_CPU_S, ">=")
    if "paced" in res:
        p = res["paced"]
        rate = p["settings"]["rate_per_s"]
        add("P3", "paced", f"end-to-end p99 at {rate:,}/s ({p['settings']['primary']})",
            p["latency_p99_ms"], "ms", TARGET_P99_MS, "<=")
        add("P3", "paced", "the gateway's part: p99 minus p99 of the Kafka-only run just before",
            p.get("gateway_part_p99_ms"), "ms", TARGET_GATEWAY_P99_MS, "<=")
        add("P3", "paced", "gateway_delivery_seconds p99 from /metrics buckets (Kafka timestamp "
                           "to write: includes the Kafka leg)",
            p.get("gateway_delivery_p99_ms"), "ms")
        add("P9", "paced", f"notifications per gateway CPU-second at {rate:,}/s "
                           f"({p['settings']['users']:,} users, acks)",
            p.get("per_gateway_cpu_s"), "/CPU-s", TARGET_PACED_PER_CPU_S, ">=")
    if "replay1" in res:
        r = res["replay1"]
        n = r["settings"]["notifications"]
        for store in ("sqlite", "mongo"):
            if store in r:
                add("P4", "replay1", f"one user's {n:,} stored, connect to last frame (acked)",
                    r[store]["replay_ms"], "ms", TARGET_REPLAY1_MS if store == "sqlite" else None,
                    "<=", store=STORE_NAMES[store])
    if "offline" in res:
        o = res["offline"]
        add("P5", "offline", f"stored durably per second ({o['settings']['store_notifications']:,} "
                             f"to {o['settings']['store_users']:,} offline users)",
            o["store_rate_per_s"], "/s", TARGET_STORE_PER_S, ">=", store=STORE_NAMES["mongo"])
        add("P5", "offline", "gateway CPU per stored notification",
            o.get("store_gateway_us_per_stored"), "us", store=STORE_NAMES["mongo"])
    if "storerate" in res:
        o = res["storerate"]
        add("P5", "storerate", f"stored durably per second ({o['settings']['notifications']:,} "
                               f"to {o['settings']['users']:,} offline users)",
            o["store_rate_per_s"], "/s", TARGET_STORE_PER_S, ">=", store=STORE_NAMES["sqlite"])
        add("P5", "storerate", "gateway CPU per stored notification (SQLite runs in the gateway)",
            o["gateway_us_per_stored"], "us", store=STORE_NAMES["sqlite"])
    if "storm" in res:
        st = res["storm"]
        n = st["settings"]["users"]
        for store in ("sqlite", "mongo"):
            if store in st:
                add("P6", "storm", f"{n:,} connect at once, 1 stored each: first connect to all "
                                   f"delivered ({st['settings']['handshakes_in_flight']} handshakes "
                                   "in flight)",
                    st[store]["storm_s"], "s", TARGET_STORM_S, "<=", store=STORE_NAMES[store])
    if "fanout" in res:
        f = res["fanout"]
        fs = f["settings"]
        add("P7", "fanout", f"deliveries (each connection) per gateway CPU-second, {fs['users']:,} users "
                            f"x {fs['connections_per_user']}, {fs['notifications']:,} burst",
            f["deliveries_per_gateway_cpu_s"], "/CPU-s", TARGET_FANOUT_X * TARGET_PER_CPU_S, ">=",
            note="3 x P2's target")
        if "burst" in res and res["burst"]["per_gateway_cpu_s"]["median"]:
            bm = res["burst"]["per_gateway_cpu_s"]["median"]
            add("P7", "fanout", "the same / P2 burst's median in this run",
                summary([v / bm for v in f["deliveries_per_gateway_cpu_s"].get("values", [])]),
                "x", TARGET_FANOUT_X, ">=")
    if "scale" in res:
        sc = res["scale"]
        sset = sc["settings"]
        how = (f"{sset['rate_per_s']:,}/s paced" if sset.get("mode") == "paced"
               else f"{sset['notifications']:,} burst")
        for lv in sc["levels"].values():
            add("P8", "scale", f"gateway CPU per delivery at {lv['connections']:,} connections ({how})",
                lv["gateway_us_per_delivery"], "us")
        add("P8", "scale", "max / min of those (per run index)", sc["max_over_min"], "x",
            1 + TARGET_SCALE_PCT / 100, "<=")
    order = {f"P{i}": i for i in range(1, 10)}
    return sorted(rows, key=lambda r: order[r["p"]])


def targets_table(rows: list[dict]) -> str:
    def num(v, unit):
        if v is None:
            return "-"
        if unit in ("ms", "us", "KB", "x"):
            return format(v, ".2f")
        if unit == "s":
            return format(v, ".3f")
        return format(v, ",.0f")

    lines = [("#", "measure", "store", "median", "min .. max", "spread", "n", "target", "met")]
    for r in rows:
        u = r["unit"]
        lines.append((r["p"], r["measure"], r["store"] or "", f"{num(r['median'], u)} {u}",
                      f"{num(r['min'], u)} .. {num(r['max'], u)}" if r["n"] else "-",
                      f"{r['spread_pct']:.0f}%" if r["spread_pct"] is not None else "-", str(r["n"]),
                      f"{r['target']} {u}" if r["target"] != "reported" else "reported",
                      {True: "yes", False: "NO", None: ""}[r["met"]]))
    widths = [max(len(l[c]) for l in lines) for c in range(len(lines[0]))]
    left = {1, 2}
    fmt_line = lambda l: "  ".join(l[c].ljust(widths[c]) if c in left or c == 0 else l[c].rjust(widths[c])
                                   for c in range(len(l))).rstrip()
    out = [fmt_line(lines[0]), fmt_line(["-" * w for w in widths])] + [fmt_line(l) for l in lines[1:]]
    return "\n".join(out)


def table(res: dict) -> str:
    rows = []

    def row(scn, metric, s, spec=",.0f", target=""):
        rows.append((scn, metric, fmt(s["median"], spec),
                     f"{fmt(s['min'], spec)} .. {fmt(s['max'], spec)}" if s["n"] else "-",
                     fmt(s["spread_pct"], ".0f") + "%" if s["spread_pct"] is not None else "-",
                     target))

    if "idle" in res:
        i = res["idle"]
        n = i["settings"]["connections"]
        row("P1 idle", f"KB RSS per idle connection ({n:,})", i["kb_per_connection"], ".2f",
            target=f"<= {TARGET_KB_PER_CONN:g}")
        row("idle", "  kernel KB per TCP socket (extra)", i["kernel_kb_per_socket"], ".2f")
        row("idle", f"s to open {n:,} connections", i["connect_s"], ".2f")
    if "cluster" in res:
        c = res["cluster"]
        rate = c["settings"]["rate_per_s"]
        for kind in ("kafka-only", "local", "cross-node"):
            row("cluster", f"{kind}: p50 ms at {rate:,}/s", c[kind]["latency_p50_ms"], ".2f")
            row("cluster", f"{kind}: p99 ms at {rate:,}/s", c[kind]["latency_p99_ms"], ".2f",
                target="<= 20" if kind == "cross-node" else "")
            if kind != "kafka-only":
                row("cluster", f"{kind}: gateways' µs per delivery (both summed)",
                    c[kind]["us_per_delivery"], ".1f")
    if "burst" in res:
        b = res["burst"]
        row("burst", "notifications/s (end to end)", b["throughput_per_s"])
        row("P2 burst", "per gateway CPU-second", b["per_gateway_cpu_s"], target=f">= {TARGET_PER_CPU_S:,}")
        row("burst", "  (same, from utime+stime ticks)", b["per_gateway_cpu_s_ticks"])
        row("burst", "gateway CPU s per run", b["gateway_cpu_s"], ".3f")
        row("burst", "Kafka CPU s per run", b["kafka_cpu_s"], ".2f")
        row("burst", "latency p50 ms (queueing)", b["latency_p50_ms"], ".1f")
        row("burst", "latency p99 ms (queueing)", b["latency_p99_ms"], ".1f")
    if "paced" in res:
        p = res["paced"]
        rate = p["settings"]["rate_per_s"]
        prim = p["settings"]["primary"].replace("gateway, ", "")
        row("paced", f"p50 ms at {rate:,}/s ({prim})", p["latency_p50_ms"], ".2f")
        row("paced", f"p90 ms at {rate:,}/s", p["latency_p90_ms"], ".2f")
        row("P3 paced", f"p99 ms at {rate:,}/s", p["latency_p99_ms"], ".2f", target=f"<= {TARGET_P99_MS:g}")
        row("paced", f"p99.9 ms at {rate:,}/s", p["latency_p999_ms"], ".2f")
        row("paced", "max ms", p["latency_max_ms"], ".1f")
        if "gateway_part_p99_ms" in p:
            row("paced", "  Kafka-only p99 ms, run just before", p["kafka_only_p99_ms"], ".2f")
            row("P3 paced", "  gateway's part: p99 minus Kafka-only p99 ms", p["gateway_part_p99_ms"],
                ".2f", target=f"<= {TARGET_GATEWAY_P99_MS:g}")
            row("P3 paced", "  /metrics gateway_delivery_seconds p99 ms", p["gateway_delivery_p99_ms"],
                ".2f")
            row("paced", "  /metrics: % delivered within 1 ms", p["gateway_delivery_le_1ms_pct"], ".1f")
        row("paced", "gateway CPU (cores busy)", p["gateway_cpu_per_s"], ".3f")
        if "per_gateway_cpu_s" in p:
            row("P9 paced", f"per gateway CPU-second at {rate:,}/s", p["per_gateway_cpu_s"],
                target=f">= {TARGET_PACED_PER_CPU_S:,}")
        for name, v in p.get("variants", {}).items():
            if prim == f"linger.ms {v['linger_ms']}" and v["users"] == p["settings"]["users"]:
                continue  # the main figure and its Kafka-only pair, shown above
            row("paced", f"  {name}: p50 ms", v["latency_p50_ms"], ".2f")
            row("paced", f"  {name}: p99 ms", v["latency_p99_ms"], ".2f")
            if v["target"] == "gateway":
                row("paced", f"  {name}: gateway cores busy", v["gateway_cpu_per_s"], ".2f")
    if "fanout" in res:
        f = res["fanout"]
        fs = f["settings"]
        row("P7 fanout", f"deliveries per gateway CPU-s ({fs['users']} x {fs['connections_per_user']})",
            f["deliveries_per_gateway_cpu_s"],
            target=f">= {TARGET_FANOUT_X:g} x P2 = {TARGET_FANOUT_X * TARGET_PER_CPU_S:,.0f}")
        row("fanout", "  notifications per gateway CPU-s", f["per_gateway_cpu_s"])
        row("fanout", "  deliveries/s (end to end)", f["deliveries_per_s"])
    if "scale" in res:
        sc = res["scale"]
        for lv in sc["levels"].values():
            row("P8 scale", f"gateway us per delivery, {lv['connections']:,} connections",
                lv["gateway_us_per_delivery"], ".2f")
        row("P8 scale", "  max / min (per run index)", sc["max_over_min"], ".2f",
            target=f"<= {1 + TARGET_SCALE_PCT / 100:.2f}")
    if "replay1" in res:
        r1 = res["replay1"]
        for store in ("sqlite", "mongo"):
            if store in r1:
                row("P4 replay1", f"ms, {r1['settings']['notifications']:,} stored to 1 user "
                                  f"({STORE_NAMES[store]})", r1[store]["replay_ms"], ".1f",
                    target=f"<= {TARGET_REPLAY1_MS:g}" if store == "sqlite" else "reported")
                row("replay1", "  gateway CPU ms", r1[store]["gateway_cpu_ms"], ".1f")
    if "offline" in res:
        o = res["offline"]
        st = o["settings"]
        row("P5 offline", f"stored/s ({st['store_notifications']:,} to {st['store_users']:,} users, "
                          "mongo-java-server)", o["store_rate_per_s"], target=f">= {TARGET_STORE_PER_S:,}")
        row("P5 offline", "  gateway CPU us per stored", o["store_gateway_us_per_stored"], ".1f")
        row("offline", "  store server CPU s per store run", o["store_server_cpu_s"], ".1f")
        row("offline", "  s for 1 user's fetch at that size", o["one_fetch_s_at_store_size"], ".2f")
        row("offline", f"replayed+acked/s ({st['replay_notifications']:,} to {st['replay_users']:,})",
            o["replay_rate_per_s"])
        row("offline", "  s from first connect to last frame", o["replay_s"], ".2f")
        row("offline", "  acked, still stored at last frame", o["left_in_store_at_last_frame"])
        row("offline", "  deletions/s after the last frame", o["deletes_per_s_after_last_frame"], ",.1f")
    if "storerate" in res:
        o = res["storerate"]
        st = o["settings"]
        row("P5 storerate", f"stored/s ({st['notifications']:,} to {st['users']:,} users, SQLite)",
            o["store_rate_per_s"], target=f">= {TARGET_STORE_PER_S:,}")
        row("P5 storerate", "  gateway CPU us per stored", o["gateway_us_per_stored"], ".1f")
    if "storm" in res:
        sm = res["storm"]
        for store in ("sqlite", "mongo"):
            if store in sm:
                row("P6 storm", f"s, {sm['settings']['users']:,} connect, 1 stored each "
                                f"({STORE_NAMES[store]})", sm[store]["storm_s"], ".3f",
                    target=f"<= {TARGET_STORM_S:g}")
                row("storm", "  s until all connected", sm[store]["connect_s"], ".3f")
                row("storm", "  gateway CPU s", sm[store]["gateway_cpu_s"], ".3f")
    head = ("scenario", "metric", "median", "min .. max", "spread", "target")
    widths = [max(len(str(r[c])) for r in rows + [head]) for c in range(len(head))]
    line = lambda r: "  ".join(str(r[c]).ljust(widths[c]) if c < 2 else str(r[c]).rjust(widths[c])
                               for c in range(len(head)))
    out = [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
    notes = []
    for scn in ("burst", "paced", "offline", "fanout", "scale", "storerate"):
        if scn in res and res[scn].get("shortfall"):
            notes.append(f"{scn}: {res[scn]['shortfall']} "
                         f"{'deliveries' if scn in ('fanout', 'scale') else 'notifications'} NOT "
                         f"{'stored' if scn == 'storerate' else 'received'}")
        if scn in ("burst", "paced", "fanout", "scale") and scn in res and res[scn].get("through_store"):
            notes.append(f"{scn}: {res[scn]['through_store']} notifications went through the "
                         "offline store instead of the live path")
    for scn in ("replay1", "storm"):
        for store in ("sqlite", "mongo"):
            if scn in res and store in res[scn] and res[scn][store].get("shortfall"):
                notes.append(f"{scn} ({STORE_NAMES[store]}): {res[scn][store]['shortfall']} "
                             "notifications NOT received")
    for g in res.get("gateways_replaced", []):
        notes.append(f"gateway replaced after {g}")
    if "burst" in res and res["burst"].get("duplicates"):
        notes.append(f"burst: {res['burst']['duplicates']} duplicates received")
    return "\n".join(out + notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts (about 2 minutes)")
    ap.add_argument("--only", default="", help="comma list of " + ",".join(SCENARIOS))
    ap.add_argument("--perf", action="store_true",
                    help="perf record the gateway during one extra burst; top symbols in the results")
    ap.add_argument("--gateway-bin", default=str(REPO / "build" / "consumer"))
    ap.add_argument("--gateway-built-from", default="",
                    help="recorded with the results, e.g. the commit --gateway-bin was built from")
    ap.add_argument("--max-connections", type=int, default=16000,
                    help="the gateway's --max-connections (scale opens 15,000)")
    ap.add_argument("--scale-mode", choices=("burst", "paced"), default="burst",
                    help="scale: a burst of scale_count (default) or scale_rate/s open loop")
    ap.add_argument("--storm-connect-parallel", type=int, default=256,
                    help="storm: loadgen's handshakes in flight (default 256, loadgen's own)")
    ap.add_argument("--burst-linger-ms", type=int, default=None, help="default 5")
    ap.add_argument("--paced-linger-ms", type=int, default=None, help="default 0")
    ap.add_argument("--out", default=None, help="results file (default bench/results/<date>.json)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    a = ap.parse_args()

    unknown = set(a.only.split(",")) - set(SCENARIOS) if a.only else set()
    if unknown:
        print(f"--only: unknown scenario(s) {','.join(sorted(unknown))}; known: {','.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    if not Path(a.gateway_bin).is_file():
        print(f"{a.gateway_bin} is missing: run `make all` first", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs; pinning to CPU 1 will fail", file=sys.stderr)

    b = Bench(a)
    ok = False
    try:
        res = b.run()
        ok = not res.get("errors")
    finally:
        b.stop()
        if ok and not a.keep:
            shutil.rmtree(b.workdir, ignore_errors=True)
        else:
            log(f"logs kept in {b.workdir}")
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    out = Path(a.out) if a.out else BENCH / "results" / f"{stamp}{'-quick' if a.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print("Targets (issue 12): median of the measured runs, spread = (max - min) / median")
    print(targets_table(res.get("targets", [])))
    print()
    print(table(res))
    for name, tb in res.get("errors", {}).items():
        print(f"\n{name} FAILED: {tb.strip().splitlines()[-1]}")
    if "profile" in res:
        print("\nperf, gateway during one burst (self time, by thread):\n" + res["profile"]["by_thread"])
        print(res["profile"].get("threads_note", ""))
        print("\nby thread and library (>= 1%):\n" + res["profile"].get("by_thread_and_dso", ""))
        print("\nby library:\n" + res["profile"]["by_dso"])
        print("\ntop symbols:\n" + res["profile"]["top_symbols"])
    print(f"\nresults: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 1 if res.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
