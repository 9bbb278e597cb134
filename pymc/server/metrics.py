"""pymc-server's Prometheus metrics: what prometheus/memcached_exporter would export for it.

Names, types, labels, help texts and derivations follow the exporter's pkg/exporter/exporter.go:
its ``Collect`` reads ``stats``, ``stats slabs`` and ``stats items`` (merged: the top-level
lines of ``stats slabs``, ``total_malloced`` and ``active_slabs``, land among the general
stats) and ``stats settings``. Here the same (name, value) lists those replies are printed
from are read at scrape time, so ``/metrics`` and ``stats`` always agree and the request path
counts nothing extra. Series are emitted under the exporter's conditions: the lru_crawler
settings only when ``lru_crawler`` is ``yes``, per-slab series for the classes ``stats items``
and ``stats slabs`` list. Not emitted because pymc-server has no such thing (the exporter
skips them too when memcached does not report them): extstore (``memcached_extstore_*``), proxy
mode (``memcached_proxy_*``, ``round_robin_fallback_total``, ``unexpected_napi_ids_total``),
``memcached_slab_temporary_items`` (no temporary LRU: ``number_temp`` is never listed).
"""

from __future__ import annotations

from ..metrics import ProcessCollector, family, new_registry, non_empty, single, start_endpoint
from ..storage.stats import items_stats, slabs_stats
from .stats import general_stats, settings_stats

#: (stats name, metric name, kind, help) for the plain values of ``stats`` (+ stats slabs).
GENERAL = (
    ("uptime", "memcached_uptime_seconds", "counter",
     "Number of seconds since the server started."),
    ("time", "memcached_time_seconds", "gauge", "current UNIX time according to the server."),
    ("rusage_user", "memcached_process_user_cpu_seconds_total", "counter",
     "Accumulated user time for this process."),
    ("rusage_system", "memcached_process_system_cpu_seconds_total", "counter",
     "Accumulated system time for this process."),
    ("bytes", "memcached_current_bytes", "gauge", "Current number of bytes used to store items."),
    ("limit_maxbytes", "memcached_limit_bytes", "gauge",
     "Number of bytes this server is allowed to use for storage."),
    ("curr_items", "memcached_current_items", "gauge",
     "Current number of items stored by this instance."),
    ("total_items", "memcached_items_total", "counter",
     "Total number of items stored during the life of this instance."),
    ("bytes_read", "memcached_read_bytes_total", "counter",
     "Total number of bytes read by this server from network."),
    ("bytes_written", "memcached_written_bytes_total", "counter",
     "Total number of bytes sent by this server to network."),
    ("curr_connections", "memcached_current_connections", "gauge",
     "Current number of open connections."),
    ("total_connections", "memcached_connections_total", "counter",
     "Total number of connections opened since the server started running."),
    ("rejected_connections", "memcached_connections_rejected_total", "counter",
     "Total number of connections rejected due to hitting the memcached's -c limit in "
     "maxconns_fast mode."),
    ("conn_yields", "memcached_connections_yielded_total", "counter",
     "Total number of connections yielded running due to hitting the memcached's -R limit."),
    ("listen_disabled_num", "memcached_connections_listener_disabled_total", "counter",
     "Number of times that memcached has hit its connections limit and disabled its listener."),
    ("evictions", "memcached_items_evicted_total", "counter",
     "Total number of valid items removed from cache to free memory for new items."),
    ("reclaimed", "memcached_items_reclaimed_total", "counter",
     "Total number of times an entry was stored using memory from an expired entry."),
    ("store_too_large", "memcached_item_too_large_total", "counter",
     "The number of times an item exceeded the max-item-size when being stored."),
    ("store_no_memory", "memcached_item_no_memory_total", "counter",
     "The number of times an item could not be stored due to no more memory."),
    ("lru_crawler_starts", "memcached_lru_crawler_starts_total", "counter",
     "Times an LRU crawler was started."),
    ("direct_reclaims", "memcached_direct_reclaims_total", "counter",
     "Times worker threads had to directly reclaim or evict items."),
    ("crawler_items_checked", "memcached_lru_crawler_items_checked_total", "counter",
     "Total items examined by LRU Crawler."),
    ("crawler_reclaimed", "memcached_lru_crawler_reclaimed_total", "counter",
     "Total items freed by LRU Crawler."),
    ("moves_to_cold", "memcached_lru_crawler_moves_to_cold_total", "counter",
     "Total number of items moved from HOT/WARM to COLD LRU's."),
    ("moves_to_warm", "memcached_lru_crawler_moves_to_warm_total", "counter",
     "Total number of items moved from COLD to WARM LRU."),
    ("moves_within_lru", "memcached_lru_crawler_moves_within_lru_total", "counter",
     "Total number of items reshuffled within HOT or WARM LRU's."),
    ("total_malloced", "memcached_malloced_bytes", "gauge",
     "Number of bytes of memory allocated to slab pages."),
    ("accepting_conns", "memcached_accepting_connections", "gauge",
     "The Memcached server is currently accepting new connections."),
)

#: ``stats settings`` values emitted when lru_crawler is "yes" (bools are yes/no).
LRU_SETTINGS = (
    ("lru_crawler", "memcached_lru_crawler_enabled", "Whether the LRU crawler is enabled."),
    ("lru_crawler_sleep", "memcached_lru_crawler_sleep",
     "Microseconds to sleep between LRU crawls."),
    ("lru_crawler_tocrawl", "memcached_lru_crawler_to_crawl",
     "Max items to crawl per slab per run."),
    ("lru_maintainer_thread", "memcached_lru_crawler_maintainer_thread",
     "Split LRU mode and background threads."),
    ("hot_lru_pct", "memcached_lru_crawler_hot_percent",
     "Percent of slab memory reserved for HOT LRU."),
    ("warm_lru_pct", "memcached_lru_crawler_warm_percent",
     "Percent of slab memory reserved for WARM LRU."),
    ("hot_max_factor", "memcached_lru_crawler_hot_max_factor",
     "Set idle age of HOT LRU to COLD age * this"),
    ("warm_max_factor", "memcached_lru_crawler_warm_max_factor",
     "Set idle age of WARM LRU to COLD age * this"),
)

#: ``stats items`` per-class values: (field, metric, kind, help).
ITEMS = (
    ("number", "memcached_slab_current_items", "gauge",
     "Number of items currently stored in this slab class."),
    ("age", "memcached_slab_items_age_seconds", "gauge",
     "Number of seconds the oldest item has been in the slab class."),
    ("crawler_reclaimed", "memcached_slab_items_crawler_reclaimed_total", "counter",
     "Number of items freed by the LRU Crawler."),
    ("evicted", "memcached_slab_items_evicted_total", "counter",
     "Total number of times an item had to be evicted from the LRU before it expired."),
    ("evicted_nonzero", "memcached_slab_items_evicted_nonzero_total", "counter",
     "Total number of times an item which had an explicit expire time set had to be evicted "
     "from the LRU before it expired."),
    ("evicted_time", "memcached_slab_items_evicted_time_seconds", "counter",
     "Seconds since the last access for the most recent item evicted from this class."),
    ("evicted_unfetched", "memcached_slab_items_evicted_unfetched_total", "counter",
     "Total nmber of items evicted and never fetched."),
    ("expired_unfetched", "memcached_slab_items_expired_unfetched_total", "counter",
     "Total number of valid items evicted from the LRU which were never touched after being "
     "set."),
    ("outofmemory", "memcached_slab_items_outofmemory_total", "counter",
     "Total number of items for this slab class that have triggered an out of memory error."),
    ("reclaimed", "memcached_slab_items_reclaimed_total", "counter",
     "Total number of items reclaimed."),
    ("tailrepairs", "memcached_slab_items_tailrepairs_total", "counter",
     "Total number of times the entries for a particular ID need repairing."),
    ("mem_requested", "memcached_slab_mem_requested_bytes", "counter",
     "Number of bytes of memory actual items take up within a slab."),
    ("moves_to_cold", "memcached_slab_items_moves_to_cold", "counter",
     "Number of items moved from HOT or WARM into COLD."),
    ("moves_to_warm", "memcached_slab_items_moves_to_warm", "counter",
     "Number of items moves from COLD into WARM."),
    ("moves_within_lru", "memcached_slab_items_moves_within_lru", "counter",
     "Number of times active items were bumped within HOT or WARM."),
    ("number_hot", "memcached_slab_hot_items", "gauge",
     "Number of items presently stored in the HOT LRU."),
    ("number_warm", "memcached_slab_warm_items", "gauge",
     "Number of items presently stored in the WARM LRU."),
    ("number_cold", "memcached_slab_cold_items", "gauge",
     "Number of items presently stored in the COLD LRU."),
    ("number_temp", "memcached_slab_temporary_items", "gauge",
     "Number of items presently stored in the TEMPORARY LRU."),
    ("age_hot", "memcached_slab_hot_age_seconds", "gauge", "Age of the oldest item in HOT LRU."),
    ("age_warm", "memcached_slab_warm_age_seconds", "gauge",
     "Age of the oldest item in HOT LRU."),
)
#: ``stats items`` hits_to_<lru> -> memcached_slab_lru_hits_total{lru=...}
LRU_HITS = (("hits_to_hot", "hot"), ("hits_to_warm", "warm"), ("hits_to_cold", "cold"),
            ("hits_to_temp", "temporary"))

#: ``stats slabs`` per-class gauges.
SLABS = (
    ("chunk_size", "memcached_slab_chunk_size_bytes",
     "Number of bytes allocated to each chunk within this slab class."),
    ("chunks_per_page", "memcached_slab_chunks_per_page",
     "Number of chunks within a single page for this slab class."),
    ("total_pages", "memcached_slab_current_pages",
     "Number of pages allocated to this slab class."),
    ("total_chunks", "memcached_slab_current_chunks",
     "Number of chunks allocated to this slab class."),
    ("used_chunks", "memcached_slab_chunks_used", "Number of chunks allocated to an item."),
    ("free_chunks", "memcached_slab_chunks_free", "Number of chunks not yet allocated items."),
    ("free_chunks_end", "memcached_slab_chunks_free_end",
     "Number of free chunks at the end of the last allocated page."),
)
HIT_MISS_OPS = ("get", "delete", "incr", "decr", "cas", "touch")


class ServerCollector:
    """The memcached_exporter's series for one in-process ``Server``."""

    def __init__(self, server) -> None:
        self.server = server

    def collect(self):
        server = self.server
        cache, settings = server.cache, server.settings
        stats = dict(general_stats(cache, settings, server))
        slab_rows: dict[int, dict[str, object]] = {}
        for name, value in slabs_stats(cache):
            cid, colon, field = name.partition(":")
            if colon:
                slab_rows.setdefault(int(cid), {})[field] = value
            else:
                stats[name] = value  # total_malloced, active_slabs: top level, as gomemcache
        item_rows: dict[int, dict[str, object]] = {}
        for name, value in items_stats(cache):
            _, cid, field = name.split(":", 2)
            item_rows.setdefault(int(cid), {})[field] = value
        config = dict(settings_stats(cache, settings, server))

        yield single("memcached_up", "Could the memcached server be reached.", "gauge", 1)
        yield single("memcached_version", "The version of this memcached server.", "gauge", 1,
                     version=str(stats["version"]))

        commands = family("memcached_commands_total", "Total number of all requests broken down "
                          "by command (get, set, etc.) and status.", "counter",
                          ["command", "status"])
        for op in HIT_MISS_OPS:
            commands.add_metric([op, "hit"], float(stats[op + "_hits"]))
            commands.add_metric([op, "miss"], float(stats[op + "_misses"]))
        commands.add_metric(["cas", "badval"], float(stats["cas_badval"]))
        commands.add_metric(["flush", "hit"], float(stats["cmd_flush"]))
        # memcached counts cas commands in cmd_set too; the exporter takes them out
        cas = sum(float(stats[name]) for name in ("cas_misses", "cas_hits", "cas_badval"))
        commands.add_metric(["set", "hit"], float(stats["cmd_set"]) - cas)
        yield commands

        for key, name, kind, documentation in GENERAL:
            if key in stats:
                yield single(name, documentation, kind, stats[key])

        yield single("memcached_max_connections", "Maximum number of clients allowed.", "gauge",
                     config["maxconns"])
        if config.get("lru_crawler") == "yes":
            for key, name, documentation in LRU_SETTINGS:
                yield single(name, documentation, "gauge", _setting(config[key]))

        yield from self._items(item_rows)
        yield from self._slabs(slab_rows)

    @staticmethod
    def _items(rows: dict[int, dict[str, object]]):
        families = {field: family(name, documentation, kind, ["slab"])
                    for field, name, kind, documentation in ITEMS}
        hits = family("memcached_slab_lru_hits_total", "Number of get_hits to the LRU.",
                      "counter", ["slab", "lru"])
        for cid in sorted(rows):
            row, slab = rows[cid], str(cid)
            for field, target in families.items():
                if field in row:
                    target.add_metric([slab], float(row[field]))
            for field, lru in LRU_HITS:
                if field in row:
                    hits.add_metric([slab, lru], float(row[field]))
        yield from non_empty(hits, *families.values())

    @staticmethod
    def _slabs(rows: dict[int, dict[str, object]]):
        commands = family("memcached_slab_commands_total", "Total number of all requests broken "
                          "down by command (get, set, etc.) and status per slab.", "counter",
                          ["slab", "command", "status"])
        gauges = {field: family(name, documentation, "gauge", ["slab"])
                  for field, name, documentation in SLABS}
        for cid in sorted(rows):
            row, slab = rows[cid], str(cid)
            for op in HIT_MISS_OPS:
                commands.add_metric([slab, op, "hit"], float(row[op + "_hits"]))
            commands.add_metric([slab, "cas", "badval"], float(row["cas_badval"]))
            cas = float(row["cas_hits"]) + float(row["cas_badval"])
            commands.add_metric([slab, "set", "hit"], float(row["cmd_set"]) - cas)
            for field, target in gauges.items():
                target.add_metric([slab], float(row[field]))
        # (memcached before 1.6 also had mem_requested here; 1.6, like pymc, has it in
        # stats items, where the exporter reads it as a counter)
        yield from non_empty(commands, *gauges.values())


def _setting(value) -> float:
    """A ``stats settings`` value: yes/no as 1/0 (the exporter's parseBool), else a number."""
    if value == "yes":
        return 1.0
    if value == "no":
        return 0.0
    return float(value)


def registry_for(server):
    """The registry /metrics serves for ``server``: its stats, and this process under both
    memcached_exporter's ``memcached_process_*`` names and the usual ``process_*`` ones."""
    return new_registry(ServerCollector(server), ProcessCollector("memcached_"),
                        ProcessCollector())


def start_metrics(server):
    """Serve /metrics for ``server`` on the first of its -l addresses, port
    ``settings.metrics_port`` (OSError when taken). Returns the endpoint, or None for port 0."""
    settings = server.settings
    return start_endpoint(settings.listen, settings.metrics_port, registry_for(server),
                          "pymc-server")
