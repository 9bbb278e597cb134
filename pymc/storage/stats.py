"""Ordered (name, value) snapshots of the engine for ``stats``, ``stats items``, ``stats slabs``.

Field names and order are memcached 1.6.18's; every value is computed from our own engine.
"""

from __future__ import annotations

from .cache import Cache
from .items import COLD, HOT, WARM

Pairs = list[tuple[str, object]]


def engine_stats(cache: Cache) -> Pairs:
    """The cache counters that appear in plain ``stats``, in memcached's order, split in the
    part before ``bytes_read`` and the part after ``malloc_fails`` (see server.stats)."""
    table = cache.table
    return [
        ("cmd_get", cache.cmd_get), ("cmd_set", cache.cmd_set), ("cmd_flush", cache.cmd_flush),
        ("cmd_touch", cache.cmd_touch), ("cmd_meta", cache.cmd_meta),
        ("get_hits", cache.get_hits), ("get_misses", cache.get_misses),
        ("get_expired", cache.get_expired), ("get_flushed", cache.get_flushed),
        ("delete_misses", cache.delete_misses), ("delete_hits", cache.class_total("delete_hits")),
        ("incr_misses", cache.incr_misses), ("incr_hits", cache.class_total("incr_hits")),
        ("decr_misses", cache.decr_misses), ("decr_hits", cache.class_total("decr_hits")),
        ("cas_misses", cache.cas_misses), ("cas_hits", cache.class_total("cas_hits")),
        ("cas_badval", cache.class_total("cas_badval")),
        ("touch_hits", cache.class_total("touch_hits")), ("touch_misses", cache.touch_misses),
        ("store_too_large", cache.store_too_large), ("store_no_memory", cache.store_no_memory),
    ], [
        ("bytes", table.total_bytes), ("curr_items", table.curr_items),
        ("total_items", cache.total_items), ("slab_global_page_pool", 0),
        ("expired_unfetched", cache.class_total("expired_unfetched")),
        ("evicted_unfetched", cache.class_total("evicted_unfetched")),
        ("evicted_active", cache.class_total("evicted_active")),
        ("evictions", table.evictions_total), ("reclaimed", table.reclaimed_total),
        ("crawler_reclaimed", cache.crawler_reclaimed),
        ("crawler_items_checked", cache.crawler_items_checked),
        ("lrutail_reflocked", 0), ("moves_to_cold", cache.class_total("moves_to_cold")),
        ("moves_to_warm", cache.class_total("moves_to_warm")),
        ("moves_within_lru", cache.class_total("moves_within_lru")),
        ("direct_reclaims", cache.class_total("direct_reclaims")), ("lru_bumps_dropped", 0),
    ]


def items_stats(cache: Cache) -> Pairs:
    table = cache.table
    now = cache.now()
    pairs: Pairs = []
    for slab_class in cache.slabs.classes[1:]:
        if slab_class is None:
            continue
        cid = slab_class.id
        base = cid * 4
        number = sum(table.counts[base:base + 3])
        if not number:
            continue
        c = table.counters[cid]
        hits = table.segment_hits
        rows = [
            ("number", number), ("number_hot", table.counts[base + HOT]),
            ("number_warm", table.counts[base + WARM]),
            ("number_cold", table.counts[base + COLD]),
            ("age_hot", table.tail_age(cid, HOT, now)),
            ("age_warm", table.tail_age(cid, WARM, now)),
            ("age", table.tail_age(cid, COLD, now)),
            ("mem_requested", slab_class.requested_bytes),
            ("evicted", c.evicted), ("evicted_nonzero", c.evicted_nonzero),
            ("evicted_time", c.evicted_time), ("outofmemory", c.outofmemory),
            ("tailrepairs", c.tailrepairs), ("reclaimed", c.reclaimed),
            ("expired_unfetched", c.expired_unfetched),
            ("evicted_unfetched", c.evicted_unfetched), ("evicted_active", c.evicted_active),
            ("crawler_reclaimed", c.crawler_reclaimed),
            ("crawler_items_checked", c.crawler_items_checked),
            ("lrutail_reflocked", c.lrutail_reflocked), ("moves_to_cold", c.moves_to_cold),
            ("moves_to_warm", c.moves_to_warm), ("moves_within_lru", c.moves_within_lru),
            ("direct_reclaims", c.direct_reclaims), ("hits_to_hot", hits[base + HOT]),
            ("hits_to_warm", hits[base + WARM]), ("hits_to_cold", hits[base + COLD]),
            ("hits_to_temp", hits[base + 3]),
        ]
        pairs.extend((f"items:{cid}:{name}", value) for name, value in rows)
    return pairs


def slabs_stats(cache: Cache) -> Pairs:
    table = cache.table
    pairs: Pairs = []
    active = cache.slabs.active()
    for slab_class in active:
        cid = slab_class.id
        c = table.counters[cid]
        base = cid * 4
        rows = [
            ("chunk_size", slab_class.chunk_size), ("chunks_per_page", slab_class.per_page),
            ("total_pages", slab_class.pages), ("total_chunks", slab_class.total_chunks),
            ("used_chunks", slab_class.used_chunks), ("free_chunks", slab_class.free_chunks),
            ("free_chunks_end", 0), ("get_hits", sum(table.segment_hits[base:base + 4])),
            ("cmd_set", c.cmd_set), ("delete_hits", c.delete_hits), ("incr_hits", c.incr_hits),
            ("decr_hits", c.decr_hits), ("cas_hits", c.cas_hits), ("cas_badval", c.cas_badval),
            ("touch_hits", c.touch_hits),
        ]
        pairs.extend((f"{cid}:{name}", value) for name, value in rows)
    pairs.append(("active_slabs", len(active)))
    pairs.append(("total_malloced", cache.slabs.malloced_bytes))
    return pairs
