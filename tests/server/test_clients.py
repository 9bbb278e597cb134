"""Real clients against pymc-server: pymemcache (plain and HashClient, plus its own integration
suite), libmemcached's memccapable, and the shared probe transcript of memcached 1.6.18."""

import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED

pytestmark = pytest.mark.integration


def test_pymemcache_client(memcached_server):
    client = memcached_server.client()  # pymemcache's base.Client
    assert client.set("k", b"v", expire=100)
    assert client.get("k") == b"v"
    value, cas = client.gets("k")
    assert client.cas("k", b"w", cas)
    assert not client.cas("k", b"x", cas)
    assert client.add("k", b"z") is False
    assert client.incr("n", 1) is None
    client.set("n", b"10")
    assert client.incr("n", 5) == 15 and client.decr("n", 20) == 0
    assert client.get_many(["k", "n", "missing"]) == {"k": b"w", "n": b"0 "}
    assert client.delete("k") and client.get("k") is None
    assert client.touch("n", 10)
    assert client.version() == b"1.6.18"
    assert client.stats()[b"curr_items"] == 1
    assert client.flush_all()
    assert client.get("n") is None


def test_pymemcache_hash_client_spreads_keys(memcached_server_factory):
    from pymemcache.client.hash import HashClient

    servers = [memcached_server_factory() for _ in range(3)]
    client = HashClient([(s.host, s.port) for s in servers])
    keys = ["key-%d" % i for i in range(300)]
    client.set_many({k: k.encode() for k in keys})
    assert client.get_many(keys) == {k: k.encode() for k in keys}
    counts = [s.stats()["curr_items"] for s in servers]
    assert sum(counts) == 300 and all(n > 30 for n in counts)


@pytest.mark.timeout(300)
def test_pymemcache_own_integration_suite(memcached_server):
    import pymemcache

    tests = Path(pymemcache.__file__).parent / "test"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not tls",
         "test_integration.py", "--server", memcached_server.host,
         "--port", str(memcached_server.port)],
        cwd=tests, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


@pytest.mark.skipif(shutil.which("memccapable") is None,
                    reason="libmemcached-tools not installed (apt-get install libmemcached-tools)")
def test_memccapable_ascii(memcached_server):
    proc = subprocess.run(["memccapable", "-a", "-h", memcached_server.host,
                           "-p", str(memcached_server.port)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[FAIL]" not in proc.stdout


PROBE = SHARED / "conformance" / "probe"


def _cases(transcript: str) -> dict[str, str]:
    cases, name = {}, None
    for line in transcript.splitlines():
        if line.startswith("=== "):
            name = line[4:]
            cases[name] = ""
        elif name is not None:
            cases[name] += line + "\n"
    return cases


@pytest.mark.timeout(200)
@pytest.mark.skipif(not (PROBE / "probe.py").exists(), reason="shared/ probe not beside repo")
def test_probe_transcript_matches_memcached(memcached_server_factory):
    server = memcached_server_factory("-m", "64", debugtime=False)  # a server of its own
    proc = subprocess.run([sys.executable, str(PROBE / "probe.py"), server.address,
                           "--normalize"], capture_output=True, text=True, timeout=180)
    # "me" reports seconds since last access; a clock tick between two probe cases makes
    # it 1 instead of the recorded 0, on memcached as on pymc.
    ours = _cases(re.sub(r"\bla=1 ", "la=0 ", proc.stdout))
    reference = _cases((PROBE / "transcript_1.6.18.normalized.txt").read_text())
    differences = []
    for name, expected in reference.items():
        if name == "done":
            continue
        if ours.get(name) != expected:
            differences.append("".join(difflib.unified_diff(
                expected.splitlines(True), (ours.get(name) or "<missing>\n").splitlines(True),
                "memcached: " + name, "pymc: " + name)))
    assert not differences, "\n".join(differences)
