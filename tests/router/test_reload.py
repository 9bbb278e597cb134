"""Hot reload of the config file under load: routing switches without dropping connections,
a broken edit is rejected and counted, symlink swaps (Kubernetes ConfigMaps) and @imports are
watched."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time

import pytest

from pymc.protocol.stats import parse_stats
from tests.conftest import ServerProcess
from tests.router.conftest import pool, wait_for

pytestmark = pytest.mark.integration

FAST_RELOAD = ("--file-observer-poll-period-ms", "20",
               "--file-observer-sleep-before-update-ms", "50",
               "--reconfiguration-delay-ms", "50")


@pytest.fixture
def backends():
    started = [ServerProcess([]) for _ in range(2)]
    yield started
    for server in started:
        server.stop()


def route_to(server) -> dict:
    return {"pools": {"P": pool([server])}, "route": "PoolRoute|P"}


def write_atomically(path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def stat_value(router, name: str) -> int:
    return parse_stats(router.stats_reply("detailed"))[name]


def test_edit_under_load_switches_routing_without_dropping_connections(backends,
                                                                         start_router):
    a, b = backends
    router = start_router(route_to(a), *FAST_RELOAD)
    path = router.config_path
    stop = threading.Event()
    problems: list[bytes] = []
    done_counts = [0, 0]

    def load(worker: int) -> None:
        # one connection for the whole run: a dropped connection shows up as a problem
        client = router.connect()
        i = 0
        try:
            while not stop.is_set():
                key = b"w%d:%d" % (worker, i % 50)
                reply = client.call(b"set %s 0 0 1\r\nx\r\n" % key)
                if reply != b"STORED\r\n":
                    problems.append(reply)
                reply = client.until_end(b"get %s\r\n" % key)
                # a set just before the switch went to the old server: then the get misses
                if reply not in (b"VALUE %s 0 1\r\nx\r\nEND\r\n" % key, b"END\r\n"):
                    problems.append(reply)
                i += 1
                done_counts[worker] += 1
        except Exception as exc:  # noqa: BLE001 - reported by the test
            problems.append(repr(exc).encode())
        finally:
            client.close()

    threads = [threading.Thread(target=load, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        write_atomically(path, json.dumps(route_to(b)))
        wait_for(lambda: router.admin("config_md5_digest").decode() == md5_of(path),
                 what="the new config to go live")
        # later keys land on b
        probe = router.connect()
        assert probe.call(b"set moved 0 0 2\r\nok\r\n") == b"STORED\r\n"
        probe.close()
        direct_b = b.connect()
        assert direct_b.until_end(b"get moved\r\n") == b"VALUE moved 0 2\r\nok\r\nEND\r\n"
        direct_b.close()
        direct_a = a.connect()
        assert direct_a.until_end(b"get moved\r\n") == b"END\r\n"
        direct_a.close()

        # a broken edit is rejected and counted; the running config stays
        good_md5 = md5_of(path)
        failures = stat_value(router, "config_failures")
        write_atomically(path, '{"pools": {"P": {"servers": ["127.0.0.1:1"]}}, "route": ')
        wait_for(lambda: stat_value(router, "config_failures") == failures + 1,
                 what="the broken config to be counted")
        assert router.admin("config_md5_digest").decode() == good_md5
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert problems == []
    assert min(done_counts) > 20


def test_kubernetes_style_symlink_swap_is_seen(backends, start_router, tmp_path):
    a, b = backends
    configmap = tmp_path / "configmap"
    configmap.mkdir()
    (configmap / "..v1").mkdir()
    (configmap / "..v1" / "config.json").write_text(json.dumps(route_to(a)))
    os.symlink("..v1", configmap / "..data")
    os.symlink("..data/config.json", configmap / "config.json")
    router = start_router(configmap / "config.json", *FAST_RELOAD)
    (configmap / "..v2").mkdir()
    (configmap / "..v2" / "config.json").write_text(json.dumps(route_to(b)))
    os.symlink("..v2", configmap / "..data_tmp")
    os.replace(configmap / "..data_tmp", configmap / "..data")
    expected = md5_of(configmap / "config.json")
    wait_for(lambda: router.admin("config_md5_digest").decode() == expected,
             what="the swapped ConfigMap to go live")
    c = router.connect()
    assert c.call(b"set swapped 0 0 1\r\ny\r\n") == b"STORED\r\n"
    c.close()
    assert b.connect().until_end(b"get swapped\r\n") == b"VALUE swapped 0 1\r\ny\r\nEND\r\n"


def test_imported_file_change_reloads(backends, start_router, tmp_path):
    a, b = backends
    (tmp_path / "pools.json").write_text(json.dumps({"P": pool([a])}))
    router = start_router('{"pools": "@import(pools.json)", "route": "PoolRoute|P"}',
                          *FAST_RELOAD)
    assert router.admin("route(get,k)").decode() == "127.0.0.1:%d" % a.port
    write_atomically(tmp_path / "pools.json", json.dumps({"P": pool([b])}))
    wait_for(lambda: router.admin("route(get,k)").decode() == "127.0.0.1:%d" % b.port,
             what="the imported pools to be reloaded")
    assert stat_value(router, "configs_from_disk") == 2


def test_disable_reload_configs(backends, start_router):
    a, b = backends
    router = start_router(route_to(a), *FAST_RELOAD, "--disable-reload-configs")
    write_atomically(router.config_path, json.dumps(route_to(b)))
    time.sleep(0.5)
    assert router.admin("route(get,k)").decode() == "127.0.0.1:%d" % a.port


def test_reload_keeps_connections_and_tko_state_of_servers_that_remain(backends,
                                                                        start_router):
    a, b = backends
    dead = ServerProcess([])
    dead.stop()
    dead_address = "127.0.0.1:%d" % dead.port

    def config(servers: list[str]) -> dict:
        return {"pools": {"P": {"servers": servers}},
                "route": {"type": "FailoverRoute", "children": ["PoolRoute|P", "PoolRoute|P"]}}
    router = start_router(config(["127.0.0.1:%d" % a.port, dead_address]), *FAST_RELOAD,
                          "-r", "60000")
    c = router.connect()
    for i in range(20):  # reaches both servers; the dead one becomes TKO
        c.until_end(b"get k%d\r\n" % i)
    suspects_before = c.until_end(b"stats suspect_servers\r\n")
    assert suspects_before.startswith(b"STAT %s status:tko" % dead_address.encode())

    def a_connections() -> int:
        direct = a.connect()
        try:
            stats = direct.until_end(b"stats\r\n")
        finally:
            direct.close()
        return int(stats.split(b"STAT total_connections ")[1].split(b"\r\n")[0])
    before = a_connections()
    write_atomically(router.config_path, json.dumps(
        config(["127.0.0.1:%d" % a.port, dead_address, "127.0.0.1:%d" % b.port])))
    wait_for(lambda: router.admin("config_md5_digest").decode() == md5_of(router.config_path),
             what="the new config to go live")
    for i in range(20):
        c.until_end(b"get k%d\r\n" % i)
    # a's connection from the router was kept (only our own stats connections are new)
    assert a_connections() == before + 1
    assert c.until_end(b"stats suspect_servers\r\n").startswith(
        b"STAT %s status:tko" % dead_address.encode())
    c.close()
