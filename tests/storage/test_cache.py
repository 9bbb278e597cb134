"""Cache semantics with an injected clock: no sleeps."""

import pytest

from pymc.storage import cache as c
from pymc.storage.cache import Cache, CacheSettings, parse_counter
from pymc.storage.clock import REALTIME_MAXDELTA, TestClock
from pymc.storage.items import COLD, HOT, WARM
from pymc.storage.stats import items_stats, slabs_stats


@pytest.fixture
def clock():
    return TestClock(1_700_000_000)


def make(clock, **kwargs) -> Cache:
    return Cache(CacheSettings(**kwargs), clock)


def get(cache: Cache, key: bytes, with_cas: bool = False):
    out: list[bytes] = []
    hits = cache.get_into([key], out, with_cas)
    assert hits == (1 if out else 0)
    return b"".join(out) if out else None


def test_set_get_and_value_block(clock):
    cache = make(clock)
    assert cache.store(b"set", b"k", 5, 0, b"abc") == c.STORED
    assert get(cache, b"k") == b"VALUE k 5 3\r\nabc\r\n"
    cas = cache.table.cas[cache.table.slot(b"k")]
    assert get(cache, b"k", True) == b"VALUE k 5 3 %d\r\nabc\r\n" % cas


@pytest.mark.parametrize("with_cas", [False, True])
def test_get_stops_at_a_key_over_250_bytes(clock, with_cas):
    cache = make(clock)
    cache.store(b"set", b"a", 0, 0, b"x")
    out: list[bytes] = []
    keys = [b"a", b"nope", b"a", b"k" * 251, b"a", b"k" * 300]
    assert cache.get_into(keys, out, with_cas) == c.LONG_KEY
    assert out == []
    # memcached looked up the three keys before the long one
    assert (cache.cmd_get, cache.get_misses) == (3, 1)
    assert cache.get_into([b"k" * 250], out) == 0 and cache.cmd_get == 4


def test_gat_stops_at_a_key_over_250_bytes(clock):
    cache = make(clock)
    cache.store(b"set", b"a", 0, 0, b"x")
    out: list[bytes] = []
    assert cache.get_and_touch_into([b"a", b"nope", b"k" * 251, b"a"], 100, out) == c.LONG_KEY
    assert (cache.cmd_touch, cache.touch_misses) == (2, 1)
    assert cache.table.exptime[cache.table.slot(b"a")] == clock.now() + 100


def test_relative_exptime(clock):
    cache = make(clock)
    cache.store(b"set", b"k", 0, 0, b"v")
    cache.store(b"set", b"t", 0, 10, b"v")
    clock.advance(9)
    assert get(cache, b"t") is not None
    clock.advance(1)
    assert get(cache, b"t") is None
    assert get(cache, b"k") is not None
    assert cache.get_expired == 1


def test_absolute_and_negative_exptime(clock):
    cache = make(clock)
    unix_now = clock.unix_now()
    cache.store(b"set", b"abs", 0, unix_now + 5, b"v")
    cache.store(b"set", b"past", 0, unix_now - 5, b"v")
    cache.store(b"set", b"neg", 0, -1, b"v")
    cache.store(b"set", b"ancient", 0, REALTIME_MAXDELTA + 1, b"v")
    assert get(cache, b"past") is None
    assert get(cache, b"neg") is None
    assert get(cache, b"ancient") is None
    assert get(cache, b"abs") is not None
    clock.advance(5)
    assert get(cache, b"abs") is None


def test_add_replace_append_prepend(clock):
    cache = make(clock)
    assert cache.store(b"replace", b"k", 0, 0, b"x") == c.NOT_STORED
    assert cache.store(b"append", b"k", 0, 0, b"x") == c.NOT_STORED
    assert cache.store(b"add", b"k", 7, 0, b"b") == c.STORED
    assert cache.store(b"add", b"k", 0, 0, b"z") == c.NOT_STORED
    assert cache.store(b"append", b"k", 9, 0, b"c") == c.STORED
    assert cache.store(b"prepend", b"k", 9, 0, b"a") == c.STORED
    assert get(cache, b"k") == b"VALUE k 7 3\r\nabc\r\n"


def test_cas(clock):
    cache = make(clock)
    assert cache.store(b"cas", b"k", 0, 0, b"x", 1) == c.NOT_FOUND
    cache.store(b"set", b"k", 0, 0, b"x")
    unique = cache.table.cas[cache.table.slot(b"k")]
    assert cache.store(b"cas", b"k", 0, 0, b"y", unique + 1) == c.EXISTS
    assert cache.store(b"cas", b"k", 0, 0, b"y", unique) == c.STORED
    assert cache.store(b"cas", b"k", 0, 0, b"z", unique) == c.EXISTS
    assert (cache.cas_misses, cache.class_total("cas_hits"),
            cache.class_total("cas_badval")) == (1, 1, 2)


def test_cas_counter_is_global_and_touch_keeps_it(clock):
    cache = make(clock)
    cache.store(b"set", b"a", 0, 0, b"1")
    cache.store(b"set", b"b", 0, 0, b"1")
    a, b = (cache.table.cas[cache.table.slot(k)] for k in (b"a", b"b"))
    assert b == a + 1
    cache.touch(b"a", 100)
    assert cache.table.cas[cache.table.slot(b"a")] == a


def test_cas_disabled(clock):
    cache = make(clock, cas_enabled=False)
    cache.store(b"set", b"k", 0, 0, b"x")
    assert get(cache, b"k", True) == b"VALUE k 0 1 0\r\nx\r\n"


def test_incr_decr(clock):
    cache = make(clock)
    assert cache.arithmetic(b"n", True, 1) == (c.NOT_FOUND, 0)
    cache.store(b"set", b"n", 0, 0, b"10")
    assert cache.arithmetic(b"n", True, 5) == (c.STORED, 15)
    assert cache.arithmetic(b"n", False, 100) == (c.STORED, 0)
    cache.store(b"set", b"w", 0, 0, b"18446744073709551615")
    assert cache.arithmetic(b"w", True, 2) == (c.STORED, 1)
    cache.store(b"set", b"t", 0, 0, b"hi")
    assert cache.arithmetic(b"t", True, 1) == (c.NON_NUMERIC, 0)


def test_decr_pads_in_place_and_incr_grows(clock):
    cache = make(clock)
    cache.store(b"set", b"n", 3, 0, b"100")
    cache.arithmetic(b"n", False, 1)
    assert get(cache, b"n") == b"VALUE n 3 3\r\n99 \r\n"
    cache.store(b"set", b"g", 3, 0, b"99")
    cache.arithmetic(b"g", True, 1)
    assert get(cache, b"g") == b"VALUE g 3 3\r\n100\r\n"


@pytest.mark.parametrize("data, value", [
    (b"5", 5), (b" 5", 6 - 1), (b"99 ", 99), (b"+3", 3), (b"5abc", None), (b"", None),
    (b"-5", None), (b"123456789012345678901", None), (b"18446744073709551615", 2**64 - 1),
])
def test_counter_parsing_like_strtoull(data, value):
    assert parse_counter(data) == value


def test_flush_all_now_and_same_second_rules(clock):
    cache = make(clock)
    cache.store(b"set", b"old", 0, 0, b"v")
    cache.flush_all()
    assert get(cache, b"old") is None
    cache.store(b"set", b"new", 0, 0, b"v")   # same second, after the flush: survives (CAS)
    assert get(cache, b"new") is not None


def test_flush_all_without_cas_hides_same_second_items(clock):
    cache = make(clock, cas_enabled=False)
    cache.flush_all()
    cache.store(b"set", b"k", 0, 0, b"v")
    assert get(cache, b"k") is None
    clock.advance(1)
    cache.store(b"set", b"k2", 0, 0, b"v")
    assert get(cache, b"k2") is not None


def test_delayed_flush(clock):
    cache = make(clock)
    cache.store(b"set", b"k", 0, 0, b"v")
    cache.flush_all(10)
    clock.advance(8)
    assert get(cache, b"k") is not None
    clock.advance(2)
    assert get(cache, b"k") is None


def test_too_large_set_removes_old_value(clock):
    cache = make(clock, item_size_max=1024)
    cache.store(b"set", b"k", 0, 0, b"small")
    assert cache.store(b"set", b"k", 0, 0, b"x" * 1024) == c.TOO_LARGE
    assert get(cache, b"k") is None
    assert cache.store_too_large == 1


def test_eviction_takes_the_tail_of_the_items_own_class(clock):
    cache = make(clock, limit_bytes=2 * 1024 * 1024)
    small = b"s" * 10
    big = b"b" * 5000
    cache.store(b"set", b"small", 0, 0, small)
    n = 0
    while cache.table.evictions_total == 0:
        cache.store(b"set", b"big%d" % n, 0, 0, big)
        n += 1
    assert get(cache, b"small") is not None  # other class untouched
    assert get(cache, b"big0") is None      # oldest of the same class went first
    assert get(cache, b"big%d" % (n - 1)) is not None


def test_expired_items_are_reclaimed_before_live_ones_are_evicted(clock):
    cache = make(clock, limit_bytes=2 * 1024 * 1024)
    big = b"b" * 5000
    n = 0
    while True:
        cache.store(b"set", b"exp%d" % n, 0, 1 if n < 5 else 0, big)
        n += 1
        slab_class = cache.slabs.classes[cache.table.class_of(cache.table.slot(b"exp0"))]
        if cache.slabs.malloced_bytes >= 2 * 1024 * 1024 and slab_class.free_chunks == 0:
            break
    clock.advance(2)
    before = cache.table.evictions_total
    cache.store(b"set", b"fresh", 0, 0, big)
    counters = cache.table.counters[cache.slabs.class_for(5000 + 60)]
    assert cache.table.reclaimed_total >= 1 or counters.reclaimed >= 1
    assert cache.table.evictions_total == before


def test_no_evict_reports_out_of_memory(clock):
    cache = make(clock, limit_bytes=2 * 1024 * 1024, evict=False)
    results = [cache.store(b"set", b"k%d" % i, 0, 0, b"x" * 8192) for i in range(400)]
    assert c.NO_MEMORY in results
    first_failure = results.index(c.NO_MEMORY)
    assert all(get(cache, b"k%d" % i) for i in range(first_failure))
    assert cache.store_no_memory == results.count(c.NO_MEMORY)


def test_memory_is_charged_in_pages_against_the_limit(clock):
    cache = make(clock, limit_bytes=64 * 1024 * 1024)
    for i in range(20000):
        cache.store(b"set", b"key:%08d" % i, 0, 0, b"v" * 100)
    slabs = dict(slabs_stats(cache))
    assert slabs["active_slabs"] == 1
    assert slabs["total_malloced"] == slabs["4:total_pages"] * 1024 * 1024
    assert slabs["4:used_chunks"] == 20000
    assert slabs["4:chunk_size"] == 192


def test_lru_segments_and_bumps(clock):
    cache = make(clock)
    for i in range(100):
        cache.store(b"set", b"k%d" % i, 0, 0, b"v")
    table = cache.table
    cid = table.class_of(table.slot(b"k0"))
    assert table.counts[cid * 4 + HOT] == 100
    clock.advance(5)
    cache.maintain()
    assert table.counts[cid * 4 + HOT] <= 20
    assert table.counts[cid * 4 + COLD] >= 80
    slot = table.slot(b"k0")
    assert table.segment(slot) == COLD
    get(cache, b"k0")
    get(cache, b"k0")  # second fetch of a COLD item moves it to WARM
    assert table.segment(slot) == WARM
    items = dict(items_stats(cache))
    assert items["items:%d:number" % cid] == 100
    assert items["items:%d:hits_to_cold" % cid] == 2


def test_crawler_reclaims_expired_items(clock):
    cache = make(clock)
    for i in range(50):
        cache.store(b"set", b"k%d" % i, 0, 5, b"v")
    clock.advance(6)
    assert cache.crawl(cache.now(), 1000) == 50
    assert cache.table.curr_items == 0
    assert cache.crawler_reclaimed == 50


def test_chunked_items_use_the_largest_class(clock):
    cache = make(clock, limit_bytes=48 * 1024 * 1024, slab_chunk_max=16384)
    value = b"x" * (400 * 1024)
    assert cache.store(b"set", b"big", 0, 0, value) == c.STORED
    largest = cache.slabs.classes[cache.slabs.largest]
    assert largest.chunk_size == 16384
    assert largest.used_chunks == -(-(len(value) + 70) // 16384)
    for i in range(200):
        assert cache.store(b"set", b"b%d" % i, 0, 0, value) == c.STORED


def test_set_that_runs_out_of_memory_removes_the_old_value(clock):
    cache = make(clock, limit_bytes=2 * 1024 * 1024, evict=False)
    cache.store(b"set", b"victim", 0, 0, b"small")
    i = 0
    while cache.store(b"set", b"k%d" % i, 0, 0, b"x" * 8192) != c.NO_MEMORY:
        i += 1
    assert get(cache, b"victim") is not None          # other class, still there
    assert cache.store(b"set", b"victim", 0, 0, b"x" * 8192) == c.NO_MEMORY
    assert get(cache, b"victim") is None
    assert cache.store(b"add", b"k0", 0, 0, b"x" * 8192) == c.NOT_STORED  # add keeps old


def test_slot_numbers_widen_when_the_table_outgrows_them(clock):
    cache = make(clock)
    table = cache.table
    table.slot_bytes, table.trailer = 1, 3  # as if 3-byte slots were full, at 256 slots
    for n in range(300):
        cache.store(b"set", b"k%d" % n, n, 0, b"v%d" % n)
    assert table.slot_bytes == 4 and table.trailer == 6
    for n in range(300):
        assert get(cache, b"k%d" % n) == b"VALUE k%d %d %d\r\nv%d\r\n" % (n, n, len(b"%d" % n) + 1, n)
        assert table.keys[table.slot(b"k%d" % n)] == b"k%d" % n
    cache.delete(b"k7")
    assert get(cache, b"k7") is None and table.curr_items == 299
