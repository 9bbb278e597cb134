"""WANCache semantics against real processes: two DCs' servers behind a pymc-router with
``/eqiad/mw-wan/`` and ``/codfw/mw-wan/`` routes (purges broadcast with ``/*/mw-wan/``), plus a
router whose every route answers SERVER_ERROR. Time is an injected clock; the servers' own
clocks are shifted with ``debugtime`` where expiry matters."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from pymc.lab.wancache import (FetchResult, WANCache, _memcached_ttl, error_kind)
from tests.conftest import ServerProcess, free_port
from tests.router.conftest import RouterProcess

pytestmark = pytest.mark.integration

HOLDOFF = 11.0


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FixedRandom:
    """An rng whose draws are fixed: ``random()`` → ``value``, ``uniform`` → its upper end."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value

    def uniform(self, low: float, high: float) -> float:
        return high


def two_dc_config(eqiad: ServerProcess, codfw: ServerProcess) -> dict:
    return {"pools": {"eqiad": {"servers": ["127.0.0.1:%d" % eqiad.port]},
                      "codfw": {"servers": ["127.0.0.1:%d" % codfw.port]}},
            "routes": [{"aliases": ["/eqiad/mw/", "/eqiad/mw-wan/"], "route": "PoolRoute|eqiad"},
                       {"aliases": ["/codfw/mw/", "/codfw/mw-wan/"], "route": "PoolRoute|codfw"}]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    started = []
    try:
        eqiad = ServerProcess(["-o", "debugtime"])
        started.append(eqiad)
        codfw = ServerProcess(["-o", "debugtime"])
        started.append(codfw)
        tmp = tmp_path_factory.mktemp("wancache")
        router = RouterProcess(two_dc_config(eqiad, codfw), ["-R", "/eqiad/mw/"], tmp)
        started.append(router)
        broken = RouterProcess({"pools": {}, "route": "ErrorRoute|partition"}, [], tmp)
        started.append(broken)
        yield {"eqiad": eqiad, "codfw": codfw, "router": router, "broken": broken}
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def wan(lab, clock):
    caches = []

    def make(**options) -> WANCache:
        options.setdefault("clock", clock)
        cache = WANCache("127.0.0.1:%d" % options.pop("port", lab["router"].port), **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


@pytest.fixture
def key():
    return "test:" + uuid.uuid4().hex[:12]


def raw(server: ServerProcess, key: str) -> bytes:
    client = server.connect()
    try:
        return client.until_end(b"get %s\r\n" % key.encode())
    finally:
        client.close()


def stored_value(server: ServerProcess, key: str) -> str | None:
    reply = raw(server, key)
    if reply == b"END\r\n":
        return None
    return reply.split(b"\r\n")[1].decode()


def shift_server_clocks(lab, seconds: int) -> None:
    for name in ("eqiad", "codfw"):
        client = lab[name].connect()
        assert client.call(b"debugtime %d\r\n" % seconds) == b"OK\r\n"
        client.close()


class Counting:
    def __init__(self, value: str = "fresh", delay: float = 0.0) -> None:
        self.value, self.delay, self.calls, self.olds = value, delay, 0, []
        self.lock = threading.Lock()

    def __call__(self, old):
        with self.lock:
            self.calls += 1
            self.olds.append(old)
        if self.delay:
            time.sleep(self.delay)
        return self.value


# ---------------------------------------------------------------------------- no server


def test_helpers():
    assert WANCache.sister_key("a:b", "v") == "WANCache:a:b|#|v"
    wrapped = WANCache.wrap("x:y:z", 30, 1700000000.5)
    assert WANCache.unwrap(wrapped) == ("x:y:z", 30.0, 1700000000.5, None)
    assert WANCache.unwrap("PURGED:1700000000.250000") == (None, None, None, 1700000000.25)
    assert WANCache.unwrap("garbage") == (None, None, None, None)
    assert _memcached_ttl(0.2) == 1 and _memcached_ttl(11) == 11 and _memcached_ttl(1.5) == 2
    assert _memcached_ttl(365 * 86400) > time.time()  # absolute past 30 days
    assert error_kind("SERVER_ERROR timeout") == "server_error:timeout"
    assert error_kind("SERVER_ERROR Server unavailable. Reason: mc_res_connect_error") == \
        "server_error:unavailable"
    assert error_kind("SERVER_ERROR RootRoute: No rh found") == "server_error:no_route"
    assert error_kind("SERVER_ERROR partition") == "server_error"
    assert FetchResult("v", "stale").hit and not FetchResult("v", "callback").hit
    assert not FetchResult("b", "busy").hit


# ---------------------------------------------------------------------------- through a router


def test_miss_runs_the_callback_and_sets_then_hits(lab, wan, key):
    cache = wan()
    callback = Counting("one")
    first = cache.get_with_set(key, 60, callback)
    assert (first.value, first.source, first.stored, first.errors) == ("one", "callback", True, [])
    assert callback.olds == [None]
    second = cache.get_with_set(key, 60, Counting("two"))
    assert (second.value, second.source, second.hit) == ("one", "hit", True)
    assert callback.calls == 1
    got = cache.get(key)
    assert got.value == "one" and got.cur_ttl == pytest.approx(60, abs=1e-3) and not got.stale
    # the value lives in the local DC only, unprefixed; no lock is left behind
    assert stored_value(lab["eqiad"], f"WANCache:{key}|#|v").endswith(":one")
    assert stored_value(lab["codfw"], f"WANCache:{key}|#|v") is None
    assert stored_value(lab["eqiad"], f"WANCache:{key}|#|m") is None
    assert cache.error_count == 0


def test_set_creates_and_merges(wan, key, clock):
    cache = wan()
    assert cache.set(key, "a", 60)  # missing: added
    clock.advance(1)
    assert cache.set(key, "b", 60)  # present: CAS merge
    assert cache.get(key).value == "b"
    assert not cache.set(key, "c", 60, creating=True)  # add refuses an existing value
    assert cache.get(key).value == "b"


def test_delete_broadcasts_a_tombstone_that_blocks_writes(lab, wan, key, clock):
    cache = wan()
    assert cache.get_with_set(key, 60, Counting("old")).stored
    clock.advance(5)
    purged_at = clock()
    assert cache.delete(key)
    for dc in ("eqiad", "codfw"):  # the purge reached both DCs, prefix stripped
        assert stored_value(lab[dc], f"WANCache:{key}|#|v") == "PURGED:%.6f" % purged_at
    clock.advance(2)
    got = cache.get(key)
    assert got.value is None and got.tombstoned and got.tombstone_as_of == pytest.approx(purged_at)
    assert got.cur_ttl == pytest.approx(-2)
    # writes are held off: neither the merge nor an add lands on a tombstone
    assert not cache.set(key, "racer", 60)
    assert not cache.set(key, "racer", 60, creating=True)
    assert stored_value(lab["eqiad"], f"WANCache:{key}|#|v").startswith("PURGED:")


def test_reads_during_the_holdoff_get_interim_values(lab, wan, key, clock):
    cache = wan(rng=FixedRandom(0.5))
    cache.set(key, "old", 60)
    cache.delete(key)
    clock.advance(0.5)
    regen = Counting("new1")
    first = cache.get_with_set(key, 60, regen)
    assert (first.value, first.source, first.stored) == ("new1", "callback", True)
    # written to the interim key (1 s), not over the tombstone
    assert stored_value(lab["eqiad"], f"WANCache:{key}|#|v").startswith("PURGED:")
    assert stored_value(lab["eqiad"], f"WANCache:{key}|#|i").endswith(":new1")
    # within the 50–100 ms "recent set" window the interim value is served
    clock.advance(0.05)
    second = cache.get_with_set(key, 60, Counting("new2"))
    assert (second.value, second.source, second.hit) == ("new1", "interim", True)
    # later it is regenerated again (under the lock, which it gets)
    clock.advance(0.5)
    third = cache.get_with_set(key, 60, Counting("new3"))
    assert (third.value, third.source) == ("new3", "callback")
    assert stored_value(lab["eqiad"], f"WANCache:{key}|#|v").startswith("PURGED:")


def test_an_interim_value_from_before_the_purge_is_not_served(lab, wan, key, clock):
    cache = wan()
    cache.delete(key)
    clock.advance(1)
    cache.get_with_set(key, 60, Counting("after-first-purge"))
    clock.advance(0.01)
    cache.delete(key)  # a second purge: the interim value predates it
    clock.advance(0.01)
    result = cache.get_with_set(key, 60, Counting("after-second-purge"))
    assert (result.value, result.source) == ("after-second-purge", "callback")


def test_after_the_holdoff_values_are_stored_again(lab, wan, key, clock):
    cache = wan()
    cache.delete(key, ttl=2)
    assert not cache.set(key, "early", 60)
    shift_server_clocks(lab, 3)  # the tombstone expires on the servers
    clock.advance(3)
    result = cache.get_with_set(key, 60, Counting("late"))
    assert (result.value, result.source, result.stored) == ("late", "callback", True)
    assert cache.get_with_set(key, 60, Counting("x")).source == "hit"


def all_at_once(caches: list, read) -> list:
    """``read(cache)`` in one thread per cache, released together; the results in order."""
    results: list = [None] * len(caches)
    barrier = threading.Barrier(len(caches))

    def run(index: int) -> None:
        barrier.wait()
        results[index] = read(caches[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(caches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_the_lock_stops_a_stampede_on_a_tombstoned_key(lab, wan, key):
    setup = wan(clock=time.time)
    setup.delete(key)
    callback = Counting("regenerated", delay=0.8)
    results = all_at_once([wan(clock=time.time) for _ in range(8)],
                          lambda cache: cache.get_with_set(key, 60, callback, busy_value="busy"))
    assert callback.calls == 1
    sources = sorted(r.source for r in results)
    assert sources == ["busy"] * 7 + ["callback"]
    assert stored_value(lab["eqiad"], f"WANCache:{key}|#|m") is None  # released


def test_losers_of_the_lock_serve_the_stale_value(lab, wan, key):
    setup = wan(clock=time.time)
    setup.get_with_set(key, 60, Counting("v1"), check_keys=["ck:" + key])
    time.sleep(0.01)
    setup.touch_check_key("ck:" + key)  # the value is now stale (recently purged)
    got = setup.get(key, ["ck:" + key])
    assert got.value == "v1" and got.stale
    callback = Counting("v2", delay=0.8)
    results = all_at_once([wan(clock=time.time) for _ in range(6)],
                          lambda cache: cache.get_with_set(key, 60, callback,
                                                           check_keys=["ck:" + key]))
    assert callback.calls == 1
    assert sorted((r.source, r.value) for r in results) == \
        [("callback", "v2")] + [("stale", "v1")] * 5


def test_check_keys(lab, wan, key, clock):
    check = "ck:" + key
    cache = wan()
    # a missing check key is created (in the local DC) and counts as purged now
    assert cache.get(key, [check]).touch_as_of == pytest.approx(clock())
    assert stored_value(lab["eqiad"], f"WANCache:{check}|#|t") == \
        "PURGED:%.6f:%r" % (clock(), HOLDOFF)
    clock.advance(HOLDOFF + 1)
    assert cache.get_with_set(key, 60, Counting("v1"), check_keys=[check]).source == "callback"
    assert cache.get_with_set(key, 60, Counting("no"), check_keys=[check]).value == "v1"
    clock.advance(1)
    touched_at = clock()
    assert cache.touch_check_key(check)
    for dc in ("eqiad", "codfw"):  # broadcast
        assert stored_value(lab[dc], f"WANCache:{check}|#|t") == \
            "PURGED:%.6f:%r" % (touched_at, HOLDOFF)
    clock.advance(1)
    got = cache.get(key, [check])
    assert got.value == "v1" and got.cur_ttl == pytest.approx(-1) and got.stale
    assert cache.get(key).cur_ttl > 0  # without the check key the value is fresh
    # values generated within the hold-off after the touch are stale too
    assert cache.get_with_set(key, 60, Counting("v2"), check_keys=[check]).value == "v2"
    clock.advance(1)
    assert cache.get(key, [check]).stale
    clock.advance(HOLDOFF)
    assert cache.get_with_set(key, 60, Counting("v3"), check_keys=[check]).value == "v3"
    clock.advance(1)
    assert cache.get_with_set(key, 60, Counting("no"), check_keys=[check]).source == "hit"
    assert cache.reset_check_key(check)
    assert stored_value(lab["codfw"], f"WANCache:{check}|#|t") is None


def test_probabilistic_refresh_near_expiry_and_for_old_values(wan, key, clock):
    always = wan(rng=FixedRandom(0.0))
    never = wan(rng=FixedRandom(0.999999))
    always.get_with_set(key, 100, Counting("v1"))
    clock.advance(10)  # 90 s left of 100, low TTL 30: no refresh, whatever the draw
    assert always.get_with_set(key, 100, Counting("v2")).source == "hit"
    clock.advance(75)  # 15 s left: refresh with probability 1/2
    assert never.get_with_set(key, 100, Counting("v2")).source == "hit"
    refreshed = always.get_with_set(key, 100, Counting("v2"))
    assert (refreshed.source, refreshed.stored) == ("callback", True)  # a CAS merge
    assert always.get(key).value == "v2"
    # popularity refresh: older than AGE_NEW (60 s), TTL 0 (no expiry refresh)
    always.get_with_set(key + "p", 0, Counting("p1"))
    clock.advance(30)
    assert always.get_with_set(key + "p", 0, Counting("p2")).source == "hit"
    clock.advance(40)
    assert never.get_with_set(key + "p", 0, Counting("p2")).source == "hit"
    assert always.get_with_set(key + "p", 0, Counting("p2")).source == "callback"


def test_router_errors_are_counted_not_raised(lab, wan, key):
    cache = wan(port=lab["broken"].port)
    result = cache.get_with_set(key, 60, Counting("computed"))
    assert (result.value, result.source, result.stored) == ("computed", "callback", False)
    assert result.errors and all(kind == "server_error" for kind in result.errors)
    assert cache.last_error == "SERVER_ERROR partition"
    got = cache.get(key)
    assert got.value is None and got.error == "server_error"
    assert cache.delete(key) is False
    assert cache.touch_check_key("ck") is False
    assert cache.set(key, "x", 60) is False
    # the purges carry /*/mw-wan/, which this router has no route for
    assert cache.errors == {"server_error": 4, "server_error:no_route": 2}


def test_connection_errors_reconnect(lab, wan, key):
    port = free_port()
    dead = wan(port=port, timeout=0.5)
    result = dead.get_with_set(key, 60, Counting("computed"))
    assert result.value == "computed" and "socket:refused" in result.errors
    assert dead.errors["socket:refused"] >= 2
    cache = wan()
    assert cache.set(key, "v", 60)
    cache._sock.shutdown(socket.SHUT_RDWR)  # the connection breaks under the client
    assert cache.get(key).error is not None
    assert cache.errors["socket:closed"] == 1
    assert cache.get(key).value == "v"  # reconnected
