"""pymc's pytest plugin for real: generated test files run by pytester in both modes (fixtures,
advance_time, isolation between tests, the mcrouter factory, the lab), the plugin loaded
twice, and the context managers used directly and from unittest."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pymc.testing import MemcachedServer, Router, TwoDCLab, _hub

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
# Inner pytest runs: the plugin by -p (the entry point may load it too); hypothesis's plugin,
# where installed, costs about a second per inner session and is not needed there.
PLUGIN = ("-p", "pymc.testing.plugin", "-p", "no:hypothesispytest")

FIXTURE_TESTS = '''
import os
import time


def test_mode_and_process(memcached_server, pymc_mode):
    assert pymc_mode == os.environ["EXPECTED_MODE"] == memcached_server.mode
    assert memcached_server.address == "127.0.0.1:%d" % memcached_server.port
    # in-process: the server answers from this very process
    assert (memcached_server.stats()["pid"] == os.getpid()) == (pymc_mode == "inprocess")


def test_ttl_expires_without_sleeping(memcached_server):
    client = memcached_server.client()
    started = time.monotonic()
    client.set("session", b"alive", expire=300)
    memcached_server.advance_time(290)
    assert client.get("session") == b"alive"
    memcached_server.advance_time(10)
    assert client.get("session") is None
    assert time.monotonic() - started < 2


def test_leaves_a_mess(memcached_server):
    client = memcached_server.client()
    client.set("leak", b"x")
    client.get("leak")
    memcached_server.advance_time(100000)
    client.set("later", b"y", expire=60)


def test_starts_clean(memcached_server):
    stats = memcached_server.stats()
    assert stats["curr_items"] == 0 and stats["cmd_get"] == 0 and stats["cmd_set"] == 0
    assert memcached_server.time_offset == 0
    assert abs(stats["time"] - time.time()) <= 2  # the clock is back
    client = memcached_server.client()
    assert client.get("leak") is None
    assert client.set("now", b"z", expire=5) and client.get("now") == b"z"


def test_mcrouter_routes_keys_to_started_backends(mcrouter, memcached_server, pymc_mode):
    router = mcrouter({"pools": {"main": {"servers": 3},
                                 "side": {"servers": ["solo", memcached_server.address]}},
                       "route": "PoolRoute|main"}, "--enable-flush-cmd")
    assert router.mode == pymc_mode and all(b.mode == pymc_mode for b in router.backends)
    assert len(router.backends) == 4 and router.named["solo"] is router.servers["side"][0]
    assert router.servers["side"][1].address == memcached_server.address  # used as it is
    assert router.config["pools"]["side"]["servers"][1] == memcached_server.address
    client = router.client()
    for i in range(60):
        assert client.set("user:%d" % i, b"%d" % i)
    counts = [server.stats()["curr_items"] for server in router.servers["main"]]
    assert sum(counts) == 60 and all(counts)
    for i in range(60):
        key = "user:%d" % i
        assert router.server_for(key) in router.servers["main"]
        assert router.server_for(key).client().get(key) == b"%d" % i
    assert memcached_server.stats()["curr_items"] == 0
    assert router.admin("version").startswith("mcrouter")
    assert router.stats()["num_servers"] >= 3


def test_factory_flags(memcached_server_factory):
    small = memcached_server_factory("-m", "16", "-c", "50")
    settings = small.stats("settings")
    assert settings["maxbytes"] == 16 * 1024 * 1024 and settings["maxconns"] == 50


def test_stops_the_session_server(memcached_server):
    memcached_server.client().cache_memlimit(32)  # runtime settings are put back too
    memcached_server.stop()


def test_gets_a_running_one(memcached_server):
    assert memcached_server.running and memcached_server.client().set("k", b"v")
    assert memcached_server.stats("settings")["maxbytes"] == 64 * 1024 * 1024
'''


@pytest.mark.parametrize("mode", ["subprocess", "inprocess"])
def test_fixtures_in_both_modes(pytester, monkeypatch, mode):
    monkeypatch.setenv("EXPECTED_MODE", mode)
    pytester.makeini("[pytest]\npymc_mode = inprocess\n")  # --pymc-mode wins over the ini
    pytester.makepyfile(test_generated=FIXTURE_TESTS)
    result = pytester.runpytest(*PLUGIN, f"--pymc-mode={mode}")
    result.assert_outcomes(passed=8)


def test_mode_from_the_ini(pytester, monkeypatch):
    monkeypatch.setenv("EXPECTED_MODE", "inprocess")
    pytester.makeini("[pytest]\npymc_mode = inprocess\npymc_server_args = -m 16\n")
    pytester.makepyfile(test_mode='''
import os

def test_mode(memcached_server, pymc_mode):
    assert pymc_mode == "inprocess" and memcached_server.stats()["pid"] == os.getpid()
    assert memcached_server.stats("settings")["maxbytes"] == 16 * 1024 * 1024
''')
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=1)


def test_loading_the_plugin_twice(pytester):
    """Entry point (a stand-in dist-info here) plus -p, plus pytest_plugins: one plugin."""
    dist = pytester.mkdir("site") / "pymc_standin-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pymc-standin\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\npymc = pymc.testing.plugin\n")
    pytester.syspathinsert(dist.parent)
    pytester.makeconftest('pytest_plugins = ["pymc.testing.plugin"]\n')
    pytester.makepyfile(test_twice='''
def test_one_plugin(memcached_server, pytestconfig):
    import pymc.testing.plugin as plugin
    manager = pytestconfig.pluginmanager
    assert sum(p is plugin for p in manager.get_plugins()) == 1
    assert manager.get_plugin("pymc") is not None
    assert manager.get_plugin("pymc.testing.plugin") is not None
    assert memcached_server.client().set("k", b"v")
''')
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=1)


@pytest.mark.parametrize("mode", ["subprocess", "inprocess"])
def test_server_context_manager_starts_and_stops(mode):
    users = _hub._users
    with MemcachedServer("-m", "8", mode=mode) as server:
        assert server.running
        assert _hub._users == users + (mode == "inprocess")
        client = server.client()
        assert client.set("k", b"v", expire=10) and client.get("k") == b"v"
        server.advance_time(10)
        assert client.get("k") is None
        port = server.port
    assert not server.running and _hub._users == users
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    if users == 0:
        assert not any(t.name == "pymc-inprocess" for t in threading.enumerate())


def test_inprocess_never_monkey_patches():
    import gevent.monkey

    with MemcachedServer(mode="inprocess") as server:
        assert server.client().set("k", b"v")
        assert not gevent.monkey.is_anything_patched()
        assert socket.socket.__module__ == "socket"
        assert threading.current_thread() is threading.main_thread()


def test_bad_server_flags_are_reported():
    with pytest.raises(RuntimeError, match="exited with 64"):
        MemcachedServer("-o", "bogus_option").start()
    with pytest.raises(ValueError, match="bogus_option"):
        MemcachedServer("-o", "bogus_option", mode="inprocess").start()
    with pytest.raises(ValueError, match="port="):
        MemcachedServer("-p", "11211")


@pytest.mark.parametrize("mode", ["subprocess", "inprocess"])
@pytest.mark.parametrize("flag", ["-d", "-V", "-h"])
def test_flags_that_run_no_server_are_refused(mode, flag):
    """-d would leave a daemon that stop() cannot reach; -V and -h exit at once."""
    with pytest.raises(ValueError, match="does not run a server"):
        MemcachedServer(flag, mode=mode).start()


@pytest.mark.parametrize("mode", ["subprocess", "inprocess"])
def test_router_from_a_config_file_with_placeholders(tmp_path, mode):
    other = MemcachedServer(mode=mode).start()
    config = tmp_path / "mcrouter.json"
    config.write_text('''{  // mcrouter JSON: comments and trailing commas
      "pools": {
        "main": {"servers": ["mc1", "mc2", "auto"]},
        "gutter": {"servers": ["mc2", "%s"]},
      },
      "route": {"type": "FailoverRoute", "children": ["PoolRoute|main", "PoolRoute|gutter"]},
    }''' % other.address)
    try:
        with Router(config, mode=mode) as router:
            assert [s.name for s in router.servers["main"]] == ["mc1", "mc2", ""]
            assert router.servers["gutter"][0] is router.named["mc2"]
            assert router.servers["gutter"][1].address == other.address
            assert router.config_path != config and router.config_path.exists()
            key = next(f"k{i}" for i in range(100) if router.route(f"k{i}") ==
                       [router.named["mc1"].address])
            assert router.client().set(key, b"v")
            router.named["mc1"].stop()  # the shard dies: the key fails over
            assert router.client().set(key, b"w")
            gutter = router.server_for(key, "set")  # where a set goes now
            assert gutter in router.servers["gutter"] and gutter.client().get(key) == b"w"
            started = list(router.backends)
            assert len(started) == 3
        assert not any(server.running for server in started)
        assert other.running
    finally:
        other.stop()


@pytest.mark.parametrize("mode", ["subprocess", "inprocess"])
def test_router_bad_config_is_an_error(mode):
    with pytest.raises(RuntimeError, match="Unknown RouteHandle: NoSuchRoute"):
        Router({"pools": {"A": {"servers": 1}}, "route": "NoSuchRoute|A"}, mode=mode).start()


@pytest.mark.parametrize("mode", ["subprocess", "inprocess"])
def test_unittest_example_runs_without_pytest(mode):
    env = dict(os.environ, PYMC_TESTING_MODE=mode)
    proc = subprocess.run([sys.executable, "-m", "unittest", "-v",
                           "tests.testing.test_unittest_example"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Ran 4 tests" in proc.stderr and "OK" in proc.stderr


@pytest.mark.lab
def test_lab_fixture_is_healed_between_tests(pytester):
    pytester.makepyfile(test_lab='''
def test_break_it(pymc_lab):
    client = pymc_lab.router("eqiad").client()
    assert client.set("page", b"html")
    assert pymc_lab.fail("eqiad-mc1", "kill").startswith("killed")
    assert pymc_lab.partition("eqiad", "codfw")
    assert "eqiad-mc1" in pymc_lab.faults

def test_healed_and_empty(pymc_lab):
    assert pymc_lab.faults == {} and pymc_lab.partitions == []
    assert len(pymc_lab.running_nodes()) == len(pymc_lab.nodes)
    assert sum(s.stats()["curr_items"] for s in pymc_lab.caches()) == 0
''')
    started = time.monotonic()
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=2)
    assert time.monotonic() - started < 30


@pytest.mark.lab
def test_two_dc_lab_context_manager():
    with TwoDCLab() as lab:
        lab_dir = lab.dir
        assert sorted(lab.dcs) == ["codfw", "eqiad"]  # Lab's own API, through TwoDCLab
        eqiad, codfw = lab.router("eqiad"), lab.router("codfw")
        assert eqiad.client().set("/*/mw-wan/purge", b"tombstone")  # broadcast: every DC
        deadline = time.monotonic() + 5
        while codfw.client().get("/codfw/mw-wan/purge") != b"tombstone":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert not lab_dir.exists()
