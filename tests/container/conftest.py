"""The container tests: the Dockerfile built and run with podman, which
stands in for a Docker engine on the test machines (no engine, no registry).

Everything podman keeps is private to these tests and cached: its settings
(CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), its storage and the
debian:bookworm-slim base image, made with debootstrap from the Debian
mirror apt uses, under $TEST_CACHE_DIR/containers (default .cache/). A warm
run reuses the base image and the build's layers.

Skipped, with a banner saying why, when this machine cannot run them:
podman missing or unable to run a container, too little disk, no base
image (debootstrap failed), or no container network for compose.
REQUIRE_CONTAINER=1 turns every such skip into a failure.

Fixtures (session):
    podman      Podman: .run(*args) -> CompletedProcess, .ok(*args) -> stdout
    image       the gateway image's name, built from the checkout
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from servers import REPO, cache_dir  # noqa: E402

BASE = "debian:bookworm-slim"
IMAGE = "localhost/notification-gateway:test"
LABEL = "notification-gateway-test=1"  # on every container and volume the tests make
FREE_GB_NEEDED = 4
MIRROR = "http://deb.debian.org/debian"


def phase(what: str, started: float) -> None:
    print(f"container tests: {what} in {time.monotonic() - started:.1f} s", file=sys.stderr)


class Podman:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        conf, storage = root / "containers.conf", root / "storage.conf"
        # The sandbox cannot raise limits, and crun refuses this machine's
        # cgroup layout: podman's defaults fail here (REFERENCE.md).
        conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", '
                        '"nproc=32768:32768"]\n[engine]\nruntime = "runc"\n')
        storage.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/storage"\n'
                           f'runroot = "{root}/run"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf),
                        CONTAINERS_STORAGE_CONF=str(storage))

    def run(self, *args: str, timeout: float = 600, input: str | None = None):
        return subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, input=input)

    def ok(self, *args: str, timeout: float = 600) -> str:
        r = self.run(*args, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r.stdout

    def cleanup(self) -> None:
        """Every container and volume the tests made, also after a failure."""
        for kind in ("container", "volume"):
            ids = self.run(kind, "ls", "-aq" if kind == "container" else "-q",
                           "--filter", f"label={LABEL}").stdout.split()
            if ids:
                self.run(kind, "rm", "-f", *ids, timeout=120)
        # Anonymous volumes of the image's VOLUME (compose's run --rm
        # leaves them): the storage is the tests' own, so all unused go.
        self.run("volume", "prune", "-f", timeout=120)


def cannot_run(reason: str):
    banner = "=" * 72
    msg = (f"\n{banner}\nCONTAINER TESTS NOT RUN: {reason}\n"
           f"(REQUIRE_CONTAINER=1 makes this a failure)\n{banner}")
    print(msg, file=sys.stderr)
    if os.environ.get("REQUIRE_CONTAINER") == "1":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def base_image(p: Podman) -> None:
    """debian:bookworm-slim, made locally: no registry is reachable."""
    if p.run("image", "exists", BASE).returncode == 0:
        return
    started = time.monotonic()
    tarball = p.root / "bookworm-rootfs.tar"
    if not tarball.exists():
        with tempfile.TemporaryDirectory(dir=p.root) as tmp:
            rootfs = Path(tmp) / "rootfs"
            r = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs),
                                MIRROR], capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                raise AssertionError(f"debootstrap failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
            (rootfs / "etc/apt/sources.list").write_text(
                f"deb {MIRROR} bookworm main\ndeb {MIRROR} bookworm-updates main\n"
                "deb http://security.debian.org/debian-security bookworm-security main\n")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball) + ".part", "."],
                           check=True, timeout=300)
            os.replace(str(tarball) + ".part", tarball)
        phase("debootstrap of the base image", started)
    p.ok("import", str(tarball), BASE)
    p.ok("tag", BASE, f"docker.io/library/{BASE}")
    phase("base image", started)


@pytest.fixture(scope="session")
def podman():
    if not shutil.which("podman"):
        cannot_run("podman is not installed (scripts/install-deps.sh test installs it)")
    root = cache_dir() / "containers"
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free / 2**30
    if free < FREE_GB_NEEDED:
        cannot_run(f"the container tests need {FREE_GB_NEEDED} GB free under {root}, "
                   f"{free:.1f} GB are: free some, or point TEST_CACHE_DIR elsewhere")
    p = Podman(root)
    info = p.run("info", timeout=120)
    if info.returncode != 0:
        cannot_run(f"podman info failed: {info.stderr.strip()[-500:]}")
    try:
        base_image(p)
    except (AssertionError, subprocess.SubprocessError, OSError) as e:
        cannot_run(f"no {BASE} base image: {str(e)[-500:]}")
    probe = p.run("run", "--rm", "--network", "host", BASE, "true", timeout=120)
    if probe.returncode != 0:
        cannot_run(f"podman cannot run a container: {probe.stderr.strip()[-500:]}")
    p.cleanup()
    yield p
    p.cleanup()


@pytest.fixture(scope="session")
def image(podman) -> str:
    started = time.monotonic()
    # --format docker: the OCI format drops HEALTHCHECK. --network host: the
    # build's apt needs no bridge.
    podman.ok("build", "--pull=never", "--format", "docker", "--network", "host",
              "-t", IMAGE, str(REPO), timeout=1200)
    phase("image build", started)
    return IMAGE


def can_network(podman) -> None:
    """What compose needs beyond running a container: a bridge network with
    names, and a published port."""
    net = "ngtest-probe"
    podman.run("network", "rm", "-f", net)
    made = podman.run("network", "create", net)
    run = podman.run("run", "--rm", "--network", net, "-p", "127.0.0.1::9", BASE, "true")
    podman.run("network", "rm", "-f", net)
    if made.returncode or run.returncode:
        cannot_run("podman cannot give containers a network here: "
                   + (made.stderr or run.stderr).strip()[-500:])
