"""pymc-server's /metrics (--metrics-port, -o metrics_port): memcached_exporter's names, types
and labels, with values checked against ``stats``, ``stats items``, ``stats slabs`` and
``stats settings`` taken at the same moment, on a real process over real sockets."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import \
    text_string_to_metric_families as parse_openmetrics

from pymc.protocol.stats import stat_values
from pymc.testing import free_port
from tests.scraping import families, family_of, sample, scrape, serve_while_scraping, \
    served_names, taken_port, wait_for_metrics

pytestmark = pytest.mark.integration

#: The names memcached dashboards and alerts query: grafana/jsonnet-libs memcached-mixin
#: (dashboards.libsonnet, dashboards_out/memcached-overview.json, alerts.libsonnet,
#: prometheus_rules_out/prometheus_alerts.yaml), the mixin used with memcached_exporter.
DASHBOARD_NAMES = (
    "memcached_up", "memcached_commands_total", "memcached_current_connections",
    "memcached_max_connections", "memcached_items_evicted_total", "memcached_items_total",
    "memcached_process_user_cpu_seconds_total", "memcached_process_system_cpu_seconds_total",
    "memcached_current_bytes", "memcached_limit_bytes", "memcached_current_items",
    "memcached_connections_total", "memcached_read_bytes_total",
    "memcached_written_bytes_total", "memcached_version", "memcached_uptime_seconds",
    "memcached_slab_items_outofmemory_total",
)

#: memcached_exporter (pkg/exporter/exporter.go) metric -> (``stats`` field, Prometheus type as
#: the scrape shows it). Its counters without a _total suffix can only be untyped through
#: prometheus_client ("unknown" in the parser).
GENERAL = {
    "memcached_uptime_seconds": ("uptime", "unknown"),
    "memcached_time_seconds": ("time", "gauge"),
    "memcached_process_user_cpu_seconds_total": ("rusage_user", "counter"),
    "memcached_process_system_cpu_seconds_total": ("rusage_system", "counter"),
    "memcached_current_bytes": ("bytes", "gauge"),
    "memcached_limit_bytes": ("limit_maxbytes", "gauge"),
    "memcached_current_items": ("curr_items", "gauge"),
    "memcached_items_total": ("total_items", "counter"),
    "memcached_read_bytes_total": ("bytes_read", "counter"),
    "memcached_written_bytes_total": ("bytes_written", "counter"),
    "memcached_current_connections": ("curr_connections", "gauge"),
    "memcached_connections_total": ("total_connections", "counter"),
    "memcached_connections_rejected_total": ("rejected_connections", "counter"),
    "memcached_connections_yielded_total": ("conn_yields", "counter"),
    "memcached_connections_listener_disabled_total": ("listen_disabled_num", "counter"),
    "memcached_items_evicted_total": ("evictions", "counter"),
    "memcached_items_reclaimed_total": ("reclaimed", "counter"),
    "memcached_item_too_large_total": ("store_too_large", "counter"),
    "memcached_item_no_memory_total": ("store_no_memory", "counter"),
    "memcached_lru_crawler_starts_total": ("lru_crawler_starts", "counter"),
    "memcached_direct_reclaims_total": ("direct_reclaims", "counter"),
    "memcached_lru_crawler_items_checked_total": ("crawler_items_checked", "counter"),
    "memcached_lru_crawler_reclaimed_total": ("crawler_reclaimed", "counter"),
    "memcached_lru_crawler_moves_to_cold_total": ("moves_to_cold", "counter"),
    "memcached_lru_crawler_moves_to_warm_total": ("moves_to_warm", "counter"),
    "memcached_lru_crawler_moves_within_lru_total": ("moves_within_lru", "counter"),
    "memcached_accepting_connections": ("accepting_conns", "gauge"),
}
#: from ``stats settings`` (lru_crawler yes/no as 1/0)
SETTINGS = {
    "memcached_max_connections": "maxconns",
    "memcached_lru_crawler_enabled": "lru_crawler",
    "memcached_lru_crawler_sleep": "lru_crawler_sleep",
    "memcached_lru_crawler_to_crawl": "lru_crawler_tocrawl",
    "memcached_lru_crawler_maintainer_thread": "lru_maintainer_thread",
    "memcached_lru_crawler_hot_percent": "hot_lru_pct",
    "memcached_lru_crawler_warm_percent": "warm_lru_pct",
    "memcached_lru_crawler_hot_max_factor": "hot_max_factor",
    "memcached_lru_crawler_warm_max_factor": "warm_max_factor",
}
#: per slab class from ``stats items``: metric -> (field, type)
ITEMS = {
    "memcached_slab_current_items": ("number", "gauge"),
    "memcached_slab_items_age_seconds": ("age", "gauge"),
    "memcached_slab_items_crawler_reclaimed_total": ("crawler_reclaimed", "counter"),
    "memcached_slab_items_evicted_total": ("evicted", "counter"),
    "memcached_slab_items_evicted_nonzero_total": ("evicted_nonzero", "counter"),
    "memcached_slab_items_evicted_time_seconds": ("evicted_time", "unknown"),
    "memcached_slab_items_evicted_unfetched_total": ("evicted_unfetched", "counter"),
    "memcached_slab_items_expired_unfetched_total": ("expired_unfetched", "counter"),
    "memcached_slab_items_outofmemory_total": ("outofmemory", "counter"),
    "memcached_slab_items_reclaimed_total": ("reclaimed", "counter"),
    "memcached_slab_items_tailrepairs_total": ("tailrepairs", "counter"),
    "memcached_slab_mem_requested_bytes": ("mem_requested", "unknown"),
    "memcached_slab_items_moves_to_cold": ("moves_to_cold", "unknown"),
    "memcached_slab_items_moves_to_warm": ("moves_to_warm", "unknown"),
    "memcached_slab_items_moves_within_lru": ("moves_within_lru", "unknown"),
    "memcached_slab_hot_items": ("number_hot", "gauge"),
    "memcached_slab_warm_items": ("number_warm", "gauge"),
    "memcached_slab_cold_items": ("number_cold", "gauge"),
    "memcached_slab_hot_age_seconds": ("age_hot", "gauge"),
    "memcached_slab_warm_age_seconds": ("age_warm", "gauge"),
}
#: per slab class from ``stats slabs`` (all gauges)
SLABS = {
    "memcached_slab_chunk_size_bytes": "chunk_size",
    "memcached_slab_chunks_per_page": "chunks_per_page",
    "memcached_slab_current_pages": "total_pages",
    "memcached_slab_current_chunks": "total_chunks",
    "memcached_slab_chunks_used": "used_chunks",
    "memcached_slab_chunks_free": "free_chunks",
    "memcached_slab_chunks_free_end": "free_chunks_end",
}
#: values that move with the clock between ``stats`` and the scrape
CLOCK_FIELDS = {"uptime", "time", "age", "age_hot", "age_warm"}
CPU_FIELDS = {"rusage_user", "rusage_system"}


# -- helpers ------------------------------------------------------------------------------------


def snapshot(client) -> tuple[dict, dict, dict, dict, int]:
    """``stats items``, ``stats slabs``, ``stats settings``, then plain ``stats`` last (so a scrape
    right after sees bytes_written grown by exactly the length of that last reply)."""
    items = stat_values(client.until_end(b"stats items\r\n"))
    slabs = stat_values(client.until_end(b"stats slabs\r\n"))
    settings = stat_values(client.until_end(b"stats settings\r\n"))
    reply = client.until_end(b"stats\r\n")
    return stat_values(reply), items, slabs, settings, len(reply)


def steady(pairs: dict[str, str]) -> dict[str, str]:
    """``pairs`` without the fields that move with the clock."""
    return {name: value for name, value in pairs.items()
            if name.rsplit(":", 1)[-1] not in CLOCK_FIELDS}


def per_class(pairs: dict[str, str], prefix_parts: int) -> dict[str, dict[str, str]]:
    """``items:3:number`` (prefix_parts 3) or ``3:chunk_size`` (2) -> {"3": {"number": ...}}."""
    rows: dict[str, dict[str, str]] = {}
    for name, value in pairs.items():
        parts = name.split(":")
        if len(parts) == prefix_parts:
            rows.setdefault(parts[-2], {})[parts[-1]] = value
    return rows


def traffic(client) -> dict[str, int]:
    """A known mix of commands; returns how many of each outcome it made."""
    assert client.call(b"flush_all\r\n") == b"OK\r\n"
    for i in range(20):
        assert client.call(b"set key%d 0 0 5\r\nvalue\r\n" % i) == b"STORED\r\n"
    for i in range(15):  # 15 hits, 5 misses
        assert client.until_end(b"get key%d\r\n" % i).startswith(b"VALUE")
    for i in range(5):
        assert client.until_end(b"get missing%d\r\n" % i) == b"END\r\n"
    assert client.call(b"set n 0 0 1\r\n5\r\n") == b"STORED\r\n"
    assert client.call(b"incr n 3\r\n") == b"8\r\n"
    assert client.call(b"incr nope 1\r\n") == b"NOT_FOUND\r\n"
    assert client.call(b"decr n 1\r\n") == b"7\r\n"
    assert client.call(b"touch key1 100\r\n") == b"TOUCHED\r\n"
    assert client.call(b"touch nope 100\r\n") == b"NOT_FOUND\r\n"
    assert client.call(b"delete key19\r\n") == b"DELETED\r\n"
    assert client.call(b"delete key19\r\n") == b"NOT_FOUND\r\n"
    cas = int(client.until_end(b"gets key2\r\n").split(b"\r\n")[0].split()[4])
    assert client.call(b"cas key2 0 0 1 %d\r\nx\r\n" % cas) == b"STORED\r\n"
    assert client.call(b"cas key2 0 0 1 %d\r\nx\r\n" % cas) == b"EXISTS\r\n"
    assert client.call(b"cas nope 0 0 1 1\r\nx\r\n") == b"NOT_FOUND\r\n"
    return {"get_hit": 16, "get_miss": 5, "sets": 21, "cas": 3}


def scrape_after_traffic(server) -> tuple[dict, dict[str, int]]:
    """(the families scraped after ``traffic``, what ``traffic`` made)."""
    client = server.connect()
    made = traffic(client)
    client.close()
    return families(scrape(server.metrics_port)), made


@pytest.fixture
def metrics_server(start_server):
    port = free_port()
    server = start_server("--metrics-port", str(port), "-m", "2")
    wait_for_metrics(port)
    server.metrics_port = port
    return server


# -- names, types, labels, values ---------------------------------------------------------------


def test_scrape_matches_stats_items_slabs_and_settings(metrics_server):
    client = metrics_server.connect()
    traffic(client)
    big = b"v" * 2000  # fill -m 2 past eviction in one class, and keep a small class too
    for i in range(1500):
        client.send(b"set big%d 0 0 %d noreply\r\n%s\r\n" % (i, len(big), big))
    assert client.call(b"version\r\n").startswith(b"VERSION")
    for attempt in range(5):  # the LRU maintainer may move items between snapshots: retry
        general, items, slabs, settings, last_reply = snapshot(client)
        text = scrape(metrics_server.metrics_port)
        again = snapshot(client)
        if (steady(again[1]), again[2]) == (steady(items), slabs):
            break
    client.close()
    found = families(text)
    assert float(general["evictions"]) > 0, "the test meant to evict"

    for name, (field, kind) in GENERAL.items():
        value = sample(found, name)
        assert family_of(found, name).type == kind, name
        expected = float(general[field])
        if field == "bytes_written":
            expected += last_reply
        if field in CLOCK_FIELDS:
            assert abs(value - expected) <= 2, name
        elif field in CPU_FIELDS:
            assert expected <= value <= expected + 1, name
        else:
            assert value == expected, name
    assert sample(found, "memcached_malloced_bytes") == float(slabs["total_malloced"])
    assert sample(found, "memcached_up") == 1
    assert sample(found, "memcached_version", version=general["version"]) == 1

    assert settings["lru_crawler"] == "yes"
    for name, field in SETTINGS.items():
        expected = {"yes": 1.0, "no": 0.0}.get(settings[field])
        assert sample(found, name) == (float(settings[field]) if expected is None else expected)

    commands = {("get", "hit"): "get_hits", ("get", "miss"): "get_misses",
                ("delete", "hit"): "delete_hits", ("delete", "miss"): "delete_misses",
                ("incr", "hit"): "incr_hits", ("incr", "miss"): "incr_misses",
                ("decr", "hit"): "decr_hits", ("decr", "miss"): "decr_misses",
                ("cas", "hit"): "cas_hits", ("cas", "miss"): "cas_misses",
                ("cas", "badval"): "cas_badval", ("touch", "hit"): "touch_hits",
                ("touch", "miss"): "touch_misses", ("flush", "hit"): "cmd_flush"}
    for (command, status), field in commands.items():
        assert sample(found, "memcached_commands_total", command=command,
                      status=status) == float(general[field]), (command, status)
    cas = sum(float(general[f]) for f in ("cas_misses", "cas_hits", "cas_badval"))
    assert sample(found, "memcached_commands_total", command="set",
                  status="hit") == float(general["cmd_set"]) - cas

    item_rows = per_class(items, 3)
    assert len(item_rows) >= 2
    lru_hits = {"hits_to_hot": "hot", "hits_to_warm": "warm", "hits_to_cold": "cold",
                "hits_to_temp": "temporary"}
    for slab, row in item_rows.items():
        for name, (field, kind) in ITEMS.items():
            value = sample(found, name, slab=slab)
            if field in CLOCK_FIELDS:
                assert abs(value - float(row[field])) <= 2, (name, slab)
            else:
                assert value == float(row[field]), (name, slab)
        for field, lru in lru_hits.items():
            assert sample(found, "memcached_slab_lru_hits_total", slab=slab,
                          lru=lru) == float(row[field])
    for name, (field, kind) in ITEMS.items():
        assert family_of(found, name).type == kind, name
    evicted = sum(sample(found, "memcached_slab_items_evicted_total", slab=slab)
                  for slab in item_rows)
    assert evicted == float(general["evictions"])

    slab_rows = per_class(slabs, 2)
    for slab, row in slab_rows.items():
        for name, field in SLABS.items():
            assert found[name].type == "gauge"
            assert sample(found, name, slab=slab) == float(row[field]), (name, slab)
        for op in ("get", "delete", "incr", "decr", "cas", "touch"):
            assert sample(found, "memcached_slab_commands_total", slab=slab, command=op,
                          status="hit") == float(row[op + "_hits"])
        assert sample(found, "memcached_slab_commands_total", slab=slab, command="cas",
                      status="badval") == float(row["cas_badval"])
        assert sample(found, "memcached_slab_commands_total", slab=slab, command="set",
                      status="hit") == float(row["cmd_set"]) - float(row["cas_hits"]) - \
            float(row["cas_badval"])


def test_command_counts_follow_the_exporters_derivation(metrics_server):
    found, made = scrape_after_traffic(metrics_server)

    def commands(command, status):
        return sample(found, "memcached_commands_total", command=command, status=status)

    assert commands("get", "hit") == made["get_hit"]  # 15 gets + the gets for the cas
    assert commands("get", "miss") == made["get_miss"]
    assert commands("set", "hit") == made["sets"]  # cmd_set counts the 3 cas, set excludes them
    assert (commands("cas", "hit"), commands("cas", "badval"), commands("cas", "miss")) == \
        (1, 1, 1)
    assert (commands("incr", "hit"), commands("incr", "miss")) == (1, 1)
    assert (commands("decr", "hit"), commands("decr", "miss")) == (1, 0)
    assert (commands("touch", "hit"), commands("touch", "miss")) == (1, 1)
    assert (commands("delete", "hit"), commands("delete", "miss")) == (1, 1)
    assert commands("flush", "hit") == 1
    assert sample(found, "memcached_current_items") == 20  # 20 keys + n - key19


def test_dashboard_and_process_names_are_served(metrics_server):
    found, _ = scrape_after_traffic(metrics_server)
    names = served_names(found)
    missing = [name for name in DASHBOARD_NAMES if name not in names]
    assert not missing, missing
    for prefix in ("", "memcached_"):
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                     "process_virtual_memory_bytes", "process_start_time_seconds",
                     "process_open_fds", "process_max_fds"):
            assert prefix + name in names
    assert sample(found, "process_resident_memory_bytes") > 1e6
    assert abs(sample(found, "process_start_time_seconds") - time.time()) < 120
    assert found["process_cpu_seconds"].type == "counter"
    # the exporter's labels
    assert {tuple(sorted(s.labels)) for s in found["memcached_commands"].samples} == \
        {("command", "status")}
    assert {tuple(sorted(s.labels)) for s in found["memcached_slab_lru_hits"].samples} == \
        {("lru", "slab")}
    # what only memcached's extstore, proxy mode or temporary LRU report is not invented
    assert not [n for n in names if n.startswith(("memcached_extstore_", "memcached_proxy_"))]
    assert "memcached_slab_temporary_items" not in names


def test_openmetrics_when_asked_and_other_paths(metrics_server):
    port = metrics_server.metrics_port
    text = scrape(port, accept="application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    parsed = {family.name: family for family in parse_openmetrics(text)}
    assert parsed["memcached_uptime_seconds"].type == "unknown"
    assert parsed["memcached_commands"].type == "counter"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert b"/metrics" in response.read()
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
    assert error.value.code == 404


# -- flags ----------------------------------------------------------------------------------


def test_o_metrics_port_and_stats_settings(start_server):
    port = free_port()
    server = start_server("-o", f"modern,metrics_port={port}")
    wait_for_metrics(port)
    client = server.connect()
    settings = stat_values(client.until_end(b"stats settings\r\n"))
    assert settings["metrics_port"] == str(port)
    assert sample(families(scrape(port)), "memcached_up") == 1
    client.close()
    plain = start_server()
    client = plain.connect()
    assert "metrics_port" not in stat_values(client.until_end(b"stats settings\r\n"))
    client.close()


def test_help_lists_the_flag():
    out = subprocess.run([sys.executable, "-m", "pymc.server", "-h"], capture_output=True,
                         timeout=30, text=True).stdout
    assert "--metrics-port" in out and "metrics_port" in out


@pytest.mark.parametrize("args, message", [
    (["--metrics-port", "abc"], "--metrics-port must be a port number"),
    (["--metrics-port", "70000"], "--metrics-port must be between 0 and 65535"),
    (["--metrics-port=-1"], "--metrics-port must be between 0 and 65535"),
    (["-o", "metrics_port=x"], "-o metrics_port must be a port number"),
    (["-o", "metrics_port"], "-o metrics_port must be a port number"),
    (["-o", "metrics_port=65536"], "-o metrics_port must be between 0 and 65535"),
])
def test_bad_metrics_port_is_a_usage_error(args, message):
    done = subprocess.run([sys.executable, "-m", "pymc.server", "-p", str(free_port())] + args,
                          capture_output=True, timeout=30, text=True)
    assert done.returncode == 64, done
    assert message in done.stderr


def test_metrics_port_in_use_fails_clearly():
    with taken_port() as port:
        done = subprocess.run([sys.executable, "-m", "pymc.server", "-p", str(free_port()),
                               "-l", "127.0.0.1", "--metrics-port", str(port)],
                              capture_output=True, timeout=30, text=True)
    assert done.returncode == 71, done
    assert f"failed to serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "--metrics-port" in done.stderr


# -- under load -----------------------------------------------------------------------------


def test_scraping_under_load_does_not_stall_clients(metrics_server):
    client = metrics_server.connect()
    for i in range(200):  # more slab classes and items make scrapes bigger
        client.send(b"set pre%d 0 0 %d noreply\r\n%s\r\n" % (i, 50 + 40 * i, b"x" * (50 + 40 * i)))
    requests, scrapes, worst = serve_while_scraping(client, metrics_server.metrics_port,
                                                    "memcached_up 1.0")
    client.close()
    assert scrapes > 10, "the scraper should have run all along"
    assert requests > 200, "clients were served while scraping"
    assert worst < 0.5, f"a request waited {worst:.3f} s behind a scrape"
