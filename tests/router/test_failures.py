"""pymc-router under failure, with real processes on loopback: a killed shard behind
FailoverWithExptimeRoute (gutter takes over, probes bring the shard back), a hung shard
(SIGSTOP: timeouts, soft TKO, other shards unaffected), bounded queues."""

from __future__ import annotations

import os
import re
import signal
import statistics
import threading
import time

import pytest

from pymc.router.hashing import ch3
from tests.conftest import ServerProcess
from tests.router.conftest import MEASUREMENTS, pool, wait_for

pytestmark = pytest.mark.integration


UNAVAILABLE = re.compile(rb"SERVER_ERROR Server unavailable\. Reason: mc_res_(\w+)\r\n")


@pytest.fixture
def servers():
    started: list[ServerProcess] = []

    def start(count: int, port: int | None = None) -> list[ServerProcess]:
        new = [ServerProcess([], port=port) for _ in range(count)]
        started.extend(new)
        return new

    yield start
    for server in started:
        if server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


def keys_by_shard(count: int, shards: int) -> dict[int, list[bytes]]:
    groups: dict[int, list[bytes]] = {i: [] for i in range(shards)}
    for i in range(count):
        key = b"key:%d" % i
        groups[ch3(key, shards)].append(key)
    return groups


def gutter_config(main, gutter, exptime: int = 600) -> dict:
    return {"pools": {"main": pool(main), "gutter": pool(gutter)},
            "route": {"type": "FailoverWithExptimeRoute",
                      "normal": "PoolRoute|main",
                      "failover": "PoolRoute|gutter",
                      "failover_exptime": exptime,
                      "failover_errors": ["tko"]}}


def test_killed_shard_fails_over_to_gutter_then_comes_back(servers, start_router):
    main = servers(4)
    gutter = servers(3)
    router = start_router(gutter_config(main, gutter), "--timeouts-until-tko", "3",
                          "-r", "200", "--probe-timeout-max", "400", "-t", "500")
    groups = keys_by_shard(400, 4)
    victim = 2
    victim_keys = groups[victim]
    c = router.connect()
    for key in sum(groups.values(), []):
        assert c.call(b"set %s 0 0 2\r\nv1\r\n" % key) == b"STORED\r\n"

    main[victim].proc.kill()
    main[victim].proc.wait()
    dead = b"127.0.0.1:%d" % main[victim].port
    wait_for(lambda: b"status:tko" in router.stats_reply("suspect_servers"),
             what="the killed shard to be TKO")
    assert router.stats_reply("suspect_servers").startswith(
        b"STAT " + dead + b" status:tko num_failures:")
    assert re.search(rb"STAT " + dead + rb":ascii:plain:notcompressed-500 \S+ pending_reqs:0 "
                     rb"inflight_reqs:0 hard_tko; ", router.stats_reply("servers"))

    # After the TKO: no client-visible error for the dead shard's keys.
    errors = 0
    for key in victim_keys:
        replies = [c.call(b"set %s 0 3600 2\r\nv2\r\n" % key),
                   c.until_end(b"get %s\r\n" % key),
                   c.call(b"delete %s\r\n" % key),
                   c.call(b"set %s 0 0 2\r\nv3\r\n" % key)]
        errors += sum(b"ERROR" in reply for reply in replies)
        assert replies[1] == b"VALUE %s 0 2\r\nv2\r\nEND\r\n" % key
    assert errors == 0
    for shard, keys in groups.items():
        if shard != victim:
            for key in keys:
                assert c.until_end(b"get %s\r\n" % key) == b"VALUE %s 0 2\r\nv1\r\nEND\r\n" % key

    # The sets landed on the gutter with their TTL clamped to failover_exptime.
    ttls = []
    for server in gutter:
        g = server.connect()
        for key in victim_keys:
            reply = g.meta(b"mg %s t v\r\n" % key)
            if reply.startswith(b"VA"):
                ttls.append(int(re.search(rb" t(-?\d+)", reply).group(1)))
        g.close()
    assert len(ttls) == len(victim_keys)
    assert all(0 < ttl <= 600 for ttl in ttls), ttls

    # The shard comes back on its port; a probe clears the TKO and traffic goes back.
    servers(1, port=main[victim].port)
    wait_for(lambda: router.stats_reply("suspect_servers") == b"END\r\n",
             what="a probe to clear the TKO")
    back = main[victim].connect()
    for key in victim_keys[:20]:
        assert c.call(b"set %s 0 0 4\r\nhome\r\n" % key) == b"STORED\r\n"
        assert back.until_end(b"get %s\r\n" % key) == b"VALUE %s 0 4\r\nhome\r\nEND\r\n" % key
    back.close()
    c.close()


def _latencies(router, keys: list[bytes], rounds: int) -> list[float]:
    client = router.connect()
    samples = []
    try:
        for i in range(rounds):
            key = keys[i % len(keys)]
            start = time.perf_counter()
            reply = client.until_end(b"get %s\r\n" % key)
            samples.append(time.perf_counter() - start)
            assert reply.startswith(b"VALUE"), reply
    finally:
        client.close()
    return samples


def _p99_ms(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000


def test_hung_shard_times_out_then_soft_tko_and_others_unaffected(servers, start_router):
    main = servers(4)
    router = start_router({"pools": {"main": pool(main)}, "route": "PoolRoute|main"},
                          "--timeouts-until-tko", "3", "-t", "300", "-r", "300",
                          "--probe-timeout-max", "600")
    groups = keys_by_shard(200, 4)
    hung = 1
    others = [k for shard, keys in groups.items() if shard != hung for k in keys]
    c = router.connect()
    for key in sum(groups.values(), []):
        assert c.call(b"set %s 0 0 1\r\nx\r\n" % key) == b"STORED\r\n"
    before = _latencies(router, others, 600)

    os.kill(main[hung].proc.pid, signal.SIGSTOP)
    hung_keys = groups[hung]
    # N requests, one at a time, each answered at the server timeout.
    for key in hung_keys[:3]:
        start = time.monotonic()
        assert c.until_end(b"get %s\r\n" % key) == b"SERVER_ERROR timeout\r\n"
        assert time.monotonic() - start >= 0.25
    stopped = b"127.0.0.1:%d" % main[hung].port
    assert router.stats_reply("suspect_servers") == \
        b"STAT %s status:tko num_failures:3\r\nEND\r\n" % stopped
    assert b" soft_tko; " in router.stats_reply("servers")
    start = time.monotonic()
    reply = c.until_end(b"get %s\r\n" % hung_keys[3])
    fast_fail = time.monotonic() - start
    assert UNAVAILABLE.fullmatch(reply).group(1) == b"timeout"

    # Other shards while a second client keeps asking for the hung shard's keys.
    stop = threading.Event()
    hammered = []

    def hammer():
        h = router.connect()
        while not stop.is_set():
            hammered.append(h.until_end(b"get %s\r\n" % hung_keys[len(hammered) % 10]))
        h.close()
    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        during = _latencies(router, others, 600)
    finally:
        stop.set()
        thread.join(10)
    assert hammered and all(UNAVAILABLE.fullmatch(r) for r in hammered)
    MEASUREMENTS.append(f"hung shard: other shards' get p99 {_p99_ms(before):.2f} ms before, "
                  f"{_p99_ms(during):.2f} ms while hung and TKO "
                  f"({len(hammered)} fast-fails to the hung shard, first in "
                  f"{fast_fail * 1000:.1f} ms)")

    os.kill(main[hung].proc.pid, signal.SIGCONT)
    wait_for(lambda: router.stats_reply("suspect_servers") == b"END\r\n",
             what="a probe to clear the soft TKO")
    for key in hung_keys[:10]:
        assert c.until_end(b"get %s\r\n" % key) == b"VALUE %s 0 1\r\nx\r\nEND\r\n" % key
    c.close()


def test_late_reply_costs_one_request_not_the_connection(servers, start_router):
    """A reply after the timeout is read and dropped; requests behind it are answered."""
    backend, = servers(1)
    router = start_router({"pools": {"A": pool([backend])}, "route": "PoolRoute|A"},
                          "-t", "300", "--timeouts-until-tko", "5")
    c = router.connect()
    assert c.call(b"set k 0 0 1\r\nx\r\n") == b"STORED\r\n"
    os.kill(backend.proc.pid, signal.SIGSTOP)
    slow = router.connect()
    slow.send(b"get k\r\n")
    time.sleep(0.15)
    c.send(b"get k\r\n")
    assert slow.until_end(b"") == b"SERVER_ERROR timeout\r\n"
    os.kill(backend.proc.pid, signal.SIGCONT)
    assert c.until_end(b"") == b"VALUE k 0 1\r\nx\r\nEND\r\n"
    assert slow.until_end(b"get k\r\n") == b"VALUE k 0 1\r\nx\r\nEND\r\n"
    assert b"timeout:1" in router.stats_reply("servers")
    c.close()
    slow.close()


def test_disable_tko_tracking_keeps_trying(start_router):
    dead = ServerProcess([])
    dead.stop()
    router = start_router({"pools": {"A": {"servers": ["127.0.0.1:%d" % dead.port]}},
                           "route": "PoolRoute|A"}, "--disable-tko-tracking")
    c = router.connect()
    for _ in range(5):
        assert c.until_end(b"get k\r\n") == b"SERVER_ERROR connection error\r\n"
    assert c.until_end(b"stats suspect_servers\r\n") == b"END\r\n"
    c.close()


def test_pending_requests_to_a_hung_server_are_bounded(start_router, silent_backend):
    router = start_router({"pools": {"A": {"servers": [silent_backend]}},
                           "route": "PoolRoute|A"},
                          "-t", "2000", "--target-max-pending-requests", "10")
    clients = [router.connect() for _ in range(30)]
    for i, client in enumerate(clients):
        client.send(b"get k%d\r\n" % i)
    full = b"SERVER_ERROR Max pending requests (10) reached for destination \"%s\".\r\n" \
        % silent_backend.encode()
    replies = [client.until_end(b"") for client in clients]
    # at most 10 (the connect's "mn" takes one place) waited for the timeout
    assert replies.count(full) >= 20
    assert set(replies) == {full, b"SERVER_ERROR timeout\r\n"}
    for client in clients:
        client.close()


def test_all_async_work_is_bounded_and_drops_are_counted(start_router, silent_backend):
    router = start_router({"pools": {"A": {"servers": [silent_backend]}},
                           "route": {"type": "AllAsyncRoute", "children": "Pool|A"}},
                          "-t", "5000", "--max-async-requests", "5")
    c = router.connect()
    for i in range(20):
        assert c.call(b"set k%d 0 0 1\r\nx\r\n" % i) == b"NOT_STORED\r\n"
    stats = c.until_end(b"stats\r\n")
    assert b"STAT async_requests_inflight 5\r\n" in stats
    assert b"STAT async_requests_dropped 15\r\n" in stats
    c.close()


@pytest.fixture
def fault_proxies():
    from pymc.lab.fault_proxy import FaultProxyProcess
    started = []

    def start(upstream: ServerProcess):
        proxy = FaultProxyProcess("127.0.0.1:%d" % upstream.port).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def test_slow_backend_times_out_only_beyond_the_server_timeout(servers, start_router,
                                                               fault_proxies):
    backend, = servers(1)
    proxy = fault_proxies(backend)
    router = start_router({"pools": {"A": {"servers": [proxy.address]}},
                           "route": "PoolRoute|A"},
                          "-t", "300", "--timeouts-until-tko", "2", "-r", "200",
                          "--probe-timeout-max", "400")
    c = router.connect()
    assert c.call(b"set k 0 0 1\r\nx\r\n") == b"STORED\r\n"
    assert proxy.command("slow 100") == "OK"
    start = time.monotonic()
    assert c.until_end(b"get k\r\n") == b"VALUE k 0 1\r\nx\r\nEND\r\n"
    assert time.monotonic() - start >= 0.09
    assert proxy.command("slow 600") == "OK"
    assert c.until_end(b"get k\r\n") == b"SERVER_ERROR timeout\r\n"
    assert c.until_end(b"get k\r\n") == b"SERVER_ERROR timeout\r\n"
    assert UNAVAILABLE.fullmatch(c.until_end(b"get k\r\n")).group(1) == b"timeout"
    assert proxy.command("pass") == "OK"
    wait_for(lambda: router.stats_reply("suspect_servers") == b"END\r\n",
             what="probes to clear the TKO")
    assert c.until_end(b"get k\r\n") == b"VALUE k 0 1\r\nx\r\nEND\r\n"
    c.close()


def test_flapping_shard_goes_to_gutter_and_back_each_time(servers, start_router,
                                                          fault_proxies):
    main_server, other = servers(2)
    gutter = servers(1)
    proxy = fault_proxies(main_server)
    config = {"pools": {"main": {"servers": [proxy.address, "127.0.0.1:%d" % other.port]},
                        "gutter": pool(gutter)},
              "route": {"type": "FailoverWithExptimeRoute", "normal": "PoolRoute|main",
                        "failover": "PoolRoute|gutter", "failover_exptime": 60,
                        "failover_errors": ["tko"]}}
    router = start_router(config, "-r", "100", "--probe-timeout-max", "200", "-t", "500")
    key = keys_by_shard(50, 2)[0][0]
    c = router.connect()
    for cycle in range(3):
        assert c.call(b"set %s 0 0 1\r\n%d\r\n" % (key, cycle)) == b"STORED\r\n"
        assert proxy.command("refuse") == "OK"  # resets the router's connection too
        wait_for(lambda: b"status:tko" in router.stats_reply("suspect_servers"), what="TKO")
        assert c.call(b"set %s 0 0 1\r\ng\r\n" % key) == b"STORED\r\n"
        assert c.until_end(b"get %s\r\n" % key) == b"VALUE %s 0 1\r\ng\r\nEND\r\n" % key
        assert proxy.command("heal") == "OK"
        wait_for(lambda: router.stats_reply("suspect_servers") == b"END\r\n",
                 what="the TKO to clear")
        assert c.until_end(b"get %s\r\n" % key) == \
            b"VALUE %s 0 1\r\n%d\r\nEND\r\n" % (key, cycle)
    c.close()


def test_route_admin_shows_the_gutter_for_a_tko_shard(servers, start_router):
    main = servers(2)
    gutter = servers(1)
    router = start_router(gutter_config(main, gutter), "-r", "60000")
    key = keys_by_shard(50, 2)[0][0]
    assert router.admin("route(set,%s)" % key.decode()).decode() == \
        "127.0.0.1:%d" % main[0].port
    c = router.connect()
    assert c.call(b"set %s 0 0 1\r\nx\r\n" % key) == b"STORED\r\n"
    main[0].proc.kill()
    main[0].proc.wait()
    wait_for(lambda: b"status:tko" in router.stats_reply("suspect_servers"), what="TKO")
    assert router.admin("route(set,%s)" % key.decode()).decode() == \
        "127.0.0.1:%d" % gutter[0].port
    c.close()
