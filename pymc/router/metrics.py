"""pymc-router's Prometheus metrics: what the mcrouter exporter (Dev25/mcrouter_exporter) would
export for it, read from the router's own structures at scrape time.

The exporter's ``Collect`` reads ``stats all`` and, with ``--mcrouter.server_metrics``,
``stats servers``; the same values come here from ``RouterStats`` (``general``, ``commands``,
``result_counts``) and from the destinations ``stats servers`` prints, so ``/metrics`` agrees with
``stats`` and nothing is counted on the request path for it. Per-server series are always on.

mcrouter's rate stats (``cmd_get``, ``result_tko``: requests per second over the last 240 s, in
1 s bins) are computed here from the counters: each scrape keeps a snapshot of them (at most one
a second, none older than needed), and a rate is the increase since the oldest snapshot in the
last 240 s divided by the time since it (since start-up while younger than that) — mcrouter's
window, sampled when scraped instead of every second.

Not exported, for lack of the data (the exporter would print 0 for them): per-operation
outgoing counts (``mcrouter_command_out``, ``mcrouter_command_out_all``), client request
outcomes (``mcrouter_request{type}``, ``mcrouter_request_count``), fibers
(``mcrouter_fibers_allocated``, ``mcrouter_fibers_pool_size``), the async log
(``mcrouter_asynclog_*``) and TCP retransmits (``mcrouter_server_proxy_reqs_retrans_ratio``).
"""

from __future__ import annotations

import psutil

from ..metrics import ProcessCollector, family, new_registry, non_empty, single, start_endpoint
from .stats import server_key

#: The operations the exporter asks ``cmd_<op>_count`` for, then the extra ones we count.
EXPORTER_OPS = ("add", "append", "cas", "decr", "flushall", "flushre", "get", "gets", "incr",
                "metaget", "prepend", "replace", "touch", "set", "delete", "lease_get",
                "lease_set")
#: The replies the exporter asks ``result_<reply>`` for; RouterStats.result_counts has more.
EXPORTER_REPLIES = ("busy", "connect_error", "connect_timeout", "data_timeout", "error",
                    "local_error", "tko")
#: ``stats servers`` reply counts: (result, mcrouter_server_memcached_<name>_count, help)
SERVER_RESULTS = (
    ("stored", "stored", "Number of memcached STORED replies"),
    ("notstored", "not_stored", "Number of memcached NOT_STORED replies"),
    ("found", "found", "Number of memcached FOUND replies"),
    ("notfound", "not_found", "Number of memcached NOT_FOUND replies"),
    ("deleted", "deleted", "Number of memcached DELETED replies"),
    ("touched", "touched", "Number of memcached TOUCHED replies"),
    ("exists", "exists", "Number of memcached EXISTS replies"),
    ("remote_error", "remote_error", "Number of memcached remote errors"),
    ("connect_timeout", "connect_timeout", "Number of memcached connect timeouts"),
    ("timeout", "timeout", "Number of memcached timeouts"),
)
#: ``stats all`` values served as they are: (field, metric, kind, help)
GENERAL = (
    ("dev_null_requests", "mcrouter_dev_null_requests", "counter",
     "Number of requests sent to DevNullRoute."),
    ("duration_us", "mcrouter_duration_us", "gauge",
     "Average time of processing a request (i.e. receiving request and sending a reply)."),
    ("proxy_reqs_processing", "mcrouter_proxy_reqs_processing", "gauge",
     "Requests mcrouter started routing but didn't receive a reply yet."),
    ("proxy_reqs_waiting", "mcrouter_proxy_reqs_waiting", "gauge",
     "Requests queued up and not routed yet."),
    ("config_failures", "mcrouter_config_failures", "counter",
     "How many times mcrouter failed to reconfigure (if > 0 and growing, check the config is "
     "valid)."),
    ("config_last_attempt", "mcrouter_config_last_attempt", "gauge",
     "UNIX timestamp of last time mcrouter tried to reconfigure."),
    ("config_last_success", "mcrouter_config_last_success", "gauge",
     "UNIX timestamp of last time mcrouter reconfigured successfully."),
)

class RouterCollector:
    """The mcrouter exporter's series (with per-server metrics) for one ``RouterServer``."""

    def __init__(self, server) -> None:
        self.server = server

    def collect(self):
        server = self.server
        stats = server.stats
        general = dict(stats.general(detailed=True))
        commands = stats.commands
        results = dict(stats.result_counts(suffix=""))
        rates = stats.rates()

        yield single("mcrouter_up", "Could the mcrouter server be reached.", "gauge", 1)
        yield single("mcrouter_start_time_seconds", "UNIX timestamp of mcrouter startup time.",
                     "counter", int(server.started))
        yield single("mcrouter_version", "Version of mcrouter binary.", "gauge", 1,
                     version=str(general["version"]))
        yield single("mcrouter_commandargs", "Command line arguments used to start mcrouter.",
                     "gauge", 1, commandargs=str(general["commandargs"]))

        ops = list(EXPORTER_OPS) + sorted(set(commands) - set(EXPORTER_OPS))
        rate = family("mcrouter_commands", "Average number of received requests per second "
                      "drilled down by operation.", "gauge", ["cmd"])
        count = family("mcrouter_command_count", "Total number of received requests drilled "
                       "down by operation.", "counter", ["cmd"])
        for op in ops:
            rate.add_metric([op], rates.get("cmd_" + op, 0.0))
            count.add_metric([op], commands.get(op, 0))
        yield rate
        yield count

        for field, name, kind, documentation in GENERAL:
            yield single(name, documentation, kind, general[field])

        replies = list(EXPORTER_REPLIES) + sorted(
            {name[len("result_"):] for name in results if not name.endswith("_all")}
            - set(EXPORTER_REPLIES))
        result_rate = family("mcrouter_results", "Average number of replies per second received "
                             "for normal requests drilled down by reply result.", "gauge",
                             ["reply"])
        result_count = family("mcrouter_result_count", "Total number of replies received "
                              "drilled down by reply result", "counter", ["reply"])
        all_rate = family("mcrouter_result_all", "Average number of replies per second received "
                          "for requests drilled down by reply result.", "gauge", ["reply"])
        all_count = family("mcrouter_result_all_count", "Total number of replies received for "
                           "all requests (normal, failover, shadow) drilled down by reply "
                           "result.", "counter", ["reply"])
        for reply in replies:
            key = "result_" + reply
            result_rate.add_metric([reply], rates.get(key, 0.0))
            result_count.add_metric([reply], results.get(key, 0))
            all_rate.add_metric([reply], rates.get(key + "_all", 0.0))
            all_count.add_metric([reply], results.get(key + "_all", 0))
        yield from (result_rate, result_count, all_rate, all_count)

        clients = general["num_client_connections"]
        yield single("mcrouter_clients", "Number of connected clients.", "counter", clients)
        yield single("mcrouter_num_client_connections", "Number of connected clients (version "
                     "39 and after).", "gauge", clients)
        servers = family("mcrouter_servers", "Number of connected memcached servers.", "gauge",
                         ["state"])
        for state in ("closed", "down", "new", "up"):
            servers.add_metric([state], general["num_servers_" + state])
        yield servers

        yield single("mcrouter_cpu_seconds_total", "Number of seconds mcrouter spent on CPU.",
                     "counter", float(general["rusage_user"]) + float(general["rusage_system"]))
        yield single("mcrouter_resident_memory_bytes", "Number of bytes of resident memory.",
                     "counter", general["ps_rss"])
        vsize = _vsize()
        if vsize is not None:
            yield single("mcrouter_virtual_memory_bytes", "Number of bytes of virtual memory.",
                         "counter", vsize)
        yield from self._servers()

    def _servers(self):
        duration = family("mcrouter_server_duration_us", "Average time of processing a request "
                          "per-server (i.e. receiving request and sending a reply).", "gauge",
                          ["server"])
        processing = family("mcrouter_server_proxy_reqs_processing", "Requests mcrouter started "
                            "routing but didn't receive a reply yet (per-server metric)", "gauge",
                            ["server"])
        waiting = family("mcrouter_server_proxy_reqs_waiting", "Requests queued up and not "
                         "routed yet (per-server metric)", "gauge", ["server"])
        counts = {field: family(f"mcrouter_server_memcached_{name}_count",
                                f"{documentation} (per-server metric).", "counter", ["server"])
                  for field, name, documentation in SERVER_RESULTS}
        soft = family("mcrouter_server_memcached_soft_tko", "Whether or not memcached has been "
                      "marked as Soft TKO (per-server metric).", "gauge", ["server"])
        hard = family("mcrouter_server_memcached_hard_tko", "Whether or not memcached has been "
                      "marked as Hard TKO (per-server metric).", "gauge", ["server"])
        destinations = self.server.config.pools.destinations
        for (ap, timeout, _), destination in list(destinations.items()):
            key = [server_key(ap, timeout)]
            stats = destination.stats
            duration.add_metric(key, stats.avg_latency_us)
            processing.add_metric(key, destination.pending)
            waiting.add_metric(key, destination.pending)
            results = stats.results
            for field, target in counts.items():
                target.add_metric(key, results.get(field, 0))
            soft.add_metric(key, 1 if destination.tko.is_soft else 0)
            hard.add_metric(key, 1 if destination.tko.is_hard else 0)
        yield from non_empty(duration, processing, waiting, *counts.values(), soft, hard)


def _vsize() -> int | None:
    try:
        return psutil.Process().memory_info().vms
    except (OSError, psutil.Error):
        return None


def registry_for(server):
    """The registry /metrics serves for ``server``: its stats and this process."""
    return new_registry(RouterCollector(server), ProcessCollector())


def start_metrics(server):
    """Serve /metrics for ``server`` on the first of its listen addresses, port
    ``options.metrics_port`` (OSError when taken). Returns the endpoint, or None for port 0."""
    options = server.options
    return start_endpoint(options.listen_addresses, options.metrics_port, registry_for(server),
                          "pymc-router")

