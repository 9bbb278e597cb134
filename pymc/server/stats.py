"""``stats`` and ``stats settings`` replies: memcached's field names and order, our values."""

from __future__ import annotations

import os
import resource
import sys

from .. import MEMCACHED_VERSION
from ..storage.cache import Cache
from ..storage.stats import engine_stats
from .settings import Settings

Pairs = list[tuple[str, object]]


def general_stats(cache: Cache, settings: Settings, server) -> Pairs:
    now = cache.now()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before, after = engine_stats(cache)
    pairs: Pairs = [
        ("pid", os.getpid()), ("uptime", max(0, now - 60)),
        ("time", int(cache.clock.process_started) + now), ("version", MEMCACHED_VERSION),
        ("libevent", "gevent"), ("pointer_size", 64 if sys.maxsize > 2**32 else 32),
        ("rusage_user", "%.6f" % usage.ru_utime), ("rusage_system", "%.6f" % usage.ru_stime),
        ("max_connections", settings.max_connections),
        ("curr_connections", server.curr_connections),
        ("total_connections", server.total_connections),
        ("rejected_connections", server.rejected_connections),
        ("connection_structures", server.curr_connections + 1),
        ("response_obj_oom", 0), ("response_obj_count", 0), ("response_obj_bytes", 0),
        ("read_buf_count", server.curr_connections), ("read_buf_bytes", 0),
        ("read_buf_bytes_free", 0), ("read_buf_oom", 0), ("reserved_fds", 20),
    ]
    pairs += before
    pairs += [("auth_cmds", server.auth_cmds), ("auth_errors", server.auth_errors)]
    if settings.idle_timeout:
        pairs.append(("idle_kicks", server.idle_kicks))
    pairs += [
        ("bytes_read", server.bytes_read), ("bytes_written", server.bytes_written),
        ("limit_maxbytes", cache.settings.limit_bytes),
        ("accepting_conns", 1 if server.accepting else 0),
        ("listen_disabled_num", server.listen_disabled_num),
        ("time_in_listen_disabled_us", 0), ("threads", settings.threads), ("conn_yields", 0),
        ("hash_power_level", max(16, len(cache.table.index).bit_length())),
        ("hash_bytes", 8 << max(16, len(cache.table.index).bit_length())),
        ("hash_is_expanding", 0),
        ("slab_reassign_rescues", 0), ("slab_reassign_chunk_rescues", 0),
        ("slab_reassign_evictions_nomem", 0), ("slab_reassign_inline_reclaim", 0),
        ("slab_reassign_busy_items", 0), ("slab_reassign_busy_deletes", 0),
        ("slab_reassign_running", 0), ("slabs_moved", 0),
        ("lru_crawler_running", 0), ("lru_crawler_starts", cache.lru_crawler_starts),
        ("lru_maintainer_juggles", cache.lru_maintainer_juggles), ("malloc_fails", 0),
        ("log_worker_dropped", 0), ("log_worker_written", 0), ("log_watcher_skipped", 0),
        ("log_watcher_sent", 0), ("log_watchers", 0), ("unexpected_napi_ids", 0),
        ("round_robin_fallback", 0),
    ]
    pairs += after
    return pairs


def settings_stats(cache: Cache, settings: Settings, server) -> Pairs:
    table = cache.table
    yes_no = {True: "yes", False: "no"}
    return [
        ("maxbytes", cache.settings.limit_bytes), ("maxconns", settings.max_connections),
        ("tcpport", server.port), ("udpport", settings.udp_port),
        ("inter", settings.listen or "NULL"), ("verbosity", settings.verbosity),
        ("oldest", max(0, cache.now() - cache.oldest_live) if cache.oldest_live else 0),
        ("evictions", "on" if settings.evict else "off"),
        ("domain_socket", settings.unix_socket or "NULL"), ("umask", 700),
        ("shutdown_command", yes_no[settings.shutdown_command]),
        ("growth_factor", "%.2f" % settings.growth_factor), ("chunk_size", settings.chunk_size),
        ("num_threads", settings.threads), ("num_threads_per_udp", settings.threads),
        ("stat_key_prefix", ":"), ("detail_enabled", yes_no[server.detail_enabled]),
        ("reqs_per_event", settings.reqs_per_event),
        ("cas_enabled", yes_no[settings.cas_enabled]), ("tcp_backlog", settings.backlog),
        ("binding_protocol", {"auto": "auto-negotiate", "ascii": "ascii",
                              "binary": "binary"}[settings.protocol]),
        ("auth_enabled_sasl", "no"), ("auth_enabled_ascii", yes_no[bool(settings.auth_file)]),
        ("item_size_max", settings.item_size_max), ("maxconns_fast", "yes"),
        ("hashpower_init", 0), ("slab_reassign", "yes"),
        ("slab_automove", settings.slab_automove), ("slab_automove_ratio", "0.80"),
        ("slab_automove_window", 30), ("slab_chunk_max", settings.slab_chunk_max),
        ("lru_crawler", yes_no[settings.lru_crawler]), ("lru_crawler_sleep", 100),
        ("lru_crawler_tocrawl", 0), ("tail_repair_time", 0),
        ("flush_enabled", yes_no[settings.flush_enabled]), ("dump_enabled", "yes"),
        ("hash_algorithm", "python-dict"), ("lru_maintainer_thread", "yes"),
        ("lru_segmented", "yes"), ("hot_lru_pct", table.hot_lru_pct),
        ("warm_lru_pct", table.warm_lru_pct), ("hot_max_factor", "%.2f" % table.hot_max_factor),
        ("warm_max_factor", "%.2f" % table.warm_max_factor), ("temp_lru", "no"),
        ("temporary_ttl", 61), ("idle_timeout", settings.idle_timeout),
        ("watcher_logbuf_size", 262144), ("worker_logbuf_size", 65536),
        ("read_buf_mem_limit", 0), ("track_sizes", "no"), ("inline_ascii_response", "no"),
        ("ssl_enabled", "no"), ("memory_file", "(null)"),
    ] + ([("metrics_port", settings.metrics_port)] if settings.metrics_port else [])


