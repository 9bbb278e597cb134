"""Real clients through pymc-router: pymemcache's own integration suite in front of a
3-server PoolRoute, and pymemcache's client API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def router(mcrouter):
    # pymc's mcrouter fixture starts the three servers of pool A (started in parallel)
    return mcrouter({"pools": {"A": {"servers": 3}}, "route": "PoolRoute|A"},
                    "--enable-flush-cmd")


def test_pymemcache_client_through_router(router):
    client = router.client()  # pymemcache's base.Client
    keys = {f"key-{i}": f"value-{i}".encode() for i in range(100)}
    for key, value in keys.items():
        assert client.set(key, value)
    assert client.get_many(list(keys) + ["missing"]) == keys
    value, cas = client.gets("key-1")
    assert client.cas("key-1", b"new", cas) and not client.cas("key-1", b"x", cas)
    client.set("n", b"10")
    assert client.incr("n", 5) == 15 and client.decr("n", 20) == 0
    assert client.delete("key-2") and client.get("key-2") is None
    assert client.touch("n", 10)
    assert client.version().startswith(b"mcrouter")
    assert sum(server.stats()["curr_items"] for server in router.servers["A"]) == 100


@pytest.mark.timeout(300)
def test_pymemcache_own_integration_suite_through_router(router):
    import pymemcache

    tests = Path(pymemcache.__file__).parent / "test"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not tls",
         "test_integration.py", "--server", "127.0.0.1", "--port", str(router.port)],
        cwd=tests, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
