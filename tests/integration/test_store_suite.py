"""The offline-store contract (tests/unit/test_store.c) on both backends:
SQLite, and the MongoDB wire protocol through the real FerretDB server."""

import os
import subprocess

from conftest import BUILD_DIR


def test_store_suite_passes_on_sqlite_and_mongodb(mongo):
    binary = BUILD_DIR / "tests" / "test_store"
    assert binary.is_file(), "build it with `make unit`"
    env = dict(os.environ, STORE_TEST_MONGODB_URI=mongo.uri)
    run = subprocess.run([str(binary)], capture_output=True, text=True, env=env, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "store: SQLite" in out and "store: MongoDB" in out
    assert out.count("PASSED  ] 7 test(s)") == 2, out
