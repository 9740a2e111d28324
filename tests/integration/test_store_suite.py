"""The offline-store contract (tests/unit/test_store.c) on both backends:
SQLite, and the MongoDB wire protocol through each real MongoDB-wire test
server: FerretDB (SQLite underneath) and mongo-java-server (in memory). The
binary runs the SQLite suite every time."""

import os
import re
import subprocess

import pytest

from conftest import BUILD_DIR


@pytest.fixture(params=["ferretdb", "mongo"], ids=["ferretdb", "mongo-java-server"])
def mongo_server(request):
    """Each session fixture by name, so that only the server a case runs
    against is started (and during setup, not in the test's time)."""
    return request.getfixturevalue(request.param)


def test_store_suite_passes_on_sqlite_and_mongodb(mongo_server):
    binary = BUILD_DIR / "tests" / "test_store"
    assert binary.is_file(), "build it with `make unit`"
    env = dict(os.environ, STORE_TEST_MONGODB_URI=mongo_server.uri)
    run = subprocess.run([str(binary)], capture_output=True, text=True, env=env, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "store: SQLite" in out and "store: MongoDB" in out
    # The same contract, passed whole, by both backends.
    passed = re.findall(r"PASSED  \] (\d+) test", out)
    assert len(passed) == 3 and passed[1] == passed[2] and int(passed[1]) >= 13, out
