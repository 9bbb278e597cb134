"""pymc-router's /metrics (--metrics-port): the mcrouter exporter's names, with values checked
against ``stats all``, ``stats count``, ``stats servers`` and ``stats suspect_servers`` taken at
the same moment, on real processes: two pymc-servers, a dead port (hard TKO) and a backend
that never answers (soft TKO)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pymc.router.stats import RATE_WINDOW_SECONDS, RateWindow
from tests.conftest import free_port
from pymc.protocol.stats import stat_values
from tests.scraping import families, sample, scrape, serve_while_scraping, served_names, \
    taken_port, wait_for_metrics

pytestmark = pytest.mark.integration

#: Every metric name the mcrouter exporter's README (Dev25/mcrouter_exporter, "Collectors" and
#: the --mcrouter.server_metrics list) documents, split into what pymc-router serves and what
#: it cannot, with why. The split is ours; the names are the README's.
README_SERVED = (
    "mcrouter_clients", "mcrouter_command_count", "mcrouter_commandargs", "mcrouter_commands",
    "mcrouter_config_failures", "mcrouter_config_last_attempt", "mcrouter_config_last_success",
    "mcrouter_cpu_seconds_total", "mcrouter_dev_null_requests", "mcrouter_duration_us",
    "mcrouter_proxy_reqs_processing", "mcrouter_proxy_reqs_waiting",
    "mcrouter_resident_memory_bytes", "mcrouter_result_all", "mcrouter_result_all_count",
    "mcrouter_result_count", "mcrouter_results", "mcrouter_servers",
    "mcrouter_start_time_seconds", "mcrouter_up", "mcrouter_version",
    "mcrouter_virtual_memory_bytes",
    "mcrouter_server_duration_us", "mcrouter_server_memcached_connect_timeout_count",
    "mcrouter_server_memcached_deleted_count", "mcrouter_server_memcached_exists_count",
    "mcrouter_server_memcached_found_count", "mcrouter_server_memcached_not_found_count",
    "mcrouter_server_memcached_not_stored_count", "mcrouter_server_memcached_remote_error_count",
    "mcrouter_server_memcached_stored_count", "mcrouter_server_memcached_timeout_count",
    "mcrouter_server_memcached_touched_count", "mcrouter_server_proxy_reqs_processing",
    "mcrouter_server_proxy_reqs_waiting",
)
README_NOT_SERVED = {
    "mcrouter_asynclog_requests": "no async log (failed deletes are not spooled)",
    "mcrouter_asynclog_requests_rate": "no async log",
    "mcrouter_asynclog_spool_success_rate": "no async log",
    "mcrouter_command_out": "outgoing requests are not counted per operation",
    "mcrouter_command_out_all": "outgoing requests are not counted per operation",
    "mcrouter_fibers_allocated": "no fibers",
    "mcrouter_request": "client request outcomes are not counted",
    "mcrouter_request_count": "client request outcomes are not counted",
    "mcrouter_server_memcached_tko": "in the README only: the exporter emits soft_tko/hard_tko",
    "mcrouter_server_proxy_reqs_retrans_ratio": "TCP retransmits are not measured",
}
#: Emitted by the exporter's code but not in its README.
CODE_ONLY_SERVED = ("mcrouter_num_client_connections", "mcrouter_server_memcached_soft_tko",
                    "mcrouter_server_memcached_hard_tko")
EXPORTER_OPS = ("add", "append", "cas", "decr", "flushall", "flushre", "get", "gets", "incr",
                "metaget", "prepend", "replace", "touch", "set", "delete", "lease_get",
                "lease_set")
EXPORTER_REPLIES = ("busy", "connect_error", "connect_timeout", "data_timeout", "error",
                    "local_error", "tko")


def server_lines(reply: bytes) -> dict[str, dict[str, object]]:
    """``stats servers`` the way the exporter reads it: flags soft_tko/hard_tko, name:value
    pairs before and after the ';'."""
    out = {}
    for line in reply.decode().splitlines():
        if not line.startswith("STAT "):
            continue
        _, key, rest = line.split(" ", 2)
        row: dict[str, object] = {"soft_tko": 0, "hard_tko": 0}
        for token in rest.replace(";", " ").split():
            if token in ("soft_tko", "hard_tko"):
                row[token] = 1
            elif ":" in token:
                name, value = token.split(":", 1)
                row[name] = float(value)
        out[key] = row
    return out


def route_of(router, key: str) -> str:
    return router.admin(f"route(get,{key})").decode().strip()


@pytest.fixture
def metrics_router(start_server, start_router, silent_backend):
    live = [start_server(), start_server()]
    dead = "127.0.0.1:%d" % free_port()
    servers = ["127.0.0.1:%d" % s.port for s in live] + [dead, silent_backend]
    config = {"pools": {"A": {"servers": servers}}, "route": "PoolRoute|A"}
    port = free_port()
    before = time.monotonic()
    router = start_router(config, "--metrics-port", str(port), "-t", "200",
                          "--timeouts-until-tko", "2", "-r", "60000", "--probe-timeout-max",
                          "60000")
    ready = time.monotonic()
    wait_for_metrics(port)
    router.metrics_port, router.started_between = port, (before, ready)
    router.live, router.dead, router.silent = servers[:2], dead, silent_backend
    return router


def keys_by_server(router, count: int = 300) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in range(count):
        out.setdefault(route_of(router, f"key{i}"), []).append(f"key{i}")
    return out


def test_scrape_matches_stats_all_servers_and_suspects(metrics_router):
    router = metrics_router
    keys = keys_by_server(router)
    client = router.connect()
    for server in router.live:
        for key in keys[server][:10]:
            assert client.call(b"set %s 0 0 2\r\nhi\r\n" % key.encode()) == b"STORED\r\n"
            assert client.until_end(b"get %s\r\n" % key.encode()).startswith(b"VALUE")
        for key in keys[server][10:15]:
            assert client.until_end(b"get %s\r\n" % key.encode()) == b"END\r\n"
        key = keys[server][0].encode()
        assert client.call(b"touch %s 100\r\n" % key) == b"TOUCHED\r\n"
        assert client.call(b"add %s 0 0 1\r\nx\r\n" % key) == b"NOT_STORED\r\n"
        assert client.call(b"delete %s\r\n" % key) == b"DELETED\r\n"
        assert client.call(b"incr %s 1\r\n" % keys[server][1].encode()).startswith(
            b"CLIENT_ERROR")  # "hi" is not a number
    for key in keys[router.dead][:4]:  # connection refused: hard TKO at once
        assert client.until_end(b"get %s\r\n" % key.encode()).startswith(b"SERVER_ERROR")
    for key in keys[router.silent][:4]:  # two timeouts: soft TKO
        assert client.until_end(b"get %s\r\n" % key.encode()).startswith(b"SERVER_ERROR")
    client.until_end(b"get a b c d e f\r\n")

    general = stat_values(client.until_end(b"stats all\r\n"))
    counts = stat_values(client.until_end(b"stats count\r\n"))
    per_server = server_lines(client.until_end(b"stats servers\r\n"))
    suspects = stat_values(client.until_end(b"stats suspect_servers\r\n"))
    scrape_started = time.monotonic()
    text = scrape(router.metrics_port)
    scrape_ended = time.monotonic()
    found = families(text)
    client.close()

    assert sample(found, "mcrouter_up") == 1
    assert sample(found, "mcrouter_version", version=general["version"]) == 1
    assert sample(found, "mcrouter_commandargs", commandargs=general["commandargs"]) == 1
    assert abs(sample(found, "mcrouter_start_time_seconds")
               - (int(general["time"]) - int(general["uptime"]))) <= 2
    for op in EXPORTER_OPS + ("gat", "gats"):
        assert sample(found, "mcrouter_command_count", cmd=op) == \
            float(general.get(f"cmd_{op}_count", 0)), op
    assert sample(found, "mcrouter_command_count", cmd="get") >= 40
    for reply in EXPORTER_REPLIES + ("client_error", "remote_error"):
        assert sample(found, "mcrouter_result_count", reply=reply) == \
            float(counts[f"result_{reply}_count"]), reply
        assert sample(found, "mcrouter_result_all_count", reply=reply) == \
            float(counts[f"result_{reply}_all_count"]), reply
    assert sample(found, "mcrouter_result_count", reply="tko") > 0
    assert sample(found, "mcrouter_result_count", reply="connect_error") > 0
    for state in ("closed", "down", "new", "up"):
        assert sample(found, "mcrouter_servers", state=state) == \
            float(general[f"num_servers_{state}"]), state
    assert sample(found, "mcrouter_servers", state="down") == 2
    for name, field in (("mcrouter_clients", "num_client_connections"),
                        ("mcrouter_num_client_connections", "num_client_connections"),
                        ("mcrouter_config_failures", "config_failures"),
                        ("mcrouter_config_last_attempt", "config_last_attempt"),
                        ("mcrouter_config_last_success", "config_last_success"),
                        ("mcrouter_dev_null_requests", "dev_null_requests"),
                        ("mcrouter_duration_us", "duration_us"),
                        ("mcrouter_proxy_reqs_waiting", "proxy_reqs_waiting")):
        assert sample(found, name) == float(general[field]), name
    # ``stats all`` counted itself as a request being processed; nothing is during the scrape
    assert general["proxy_reqs_processing"] == "1"
    assert sample(found, "mcrouter_proxy_reqs_processing") == 0
    assert sample(found, "mcrouter_clients") == 1  # the stats connection
    assert sample(found, "mcrouter_duration_us") > 0
    cpu = float(general["rusage_user"]) + float(general["rusage_system"])
    assert cpu <= sample(found, "mcrouter_cpu_seconds_total") <= cpu + 1
    assert abs(sample(found, "mcrouter_resident_memory_bytes") - float(general["ps_rss"])) < 32e6
    assert sample(found, "mcrouter_virtual_memory_bytes") >= \
        sample(found, "mcrouter_resident_memory_bytes")

    # per server, as the exporter reads ``stats servers``
    assert len(per_server) == 4
    results = {"stored": "stored", "notstored": "not_stored", "found": "found",
               "notfound": "not_found", "deleted": "deleted", "touched": "touched",
               "exists": "exists", "remote_error": "remote_error",
               "connect_timeout": "connect_timeout", "timeout": "timeout"}
    for key, row in per_server.items():
        assert sample(found, "mcrouter_server_duration_us", server=key) == \
            pytest.approx(row["avg_latency_us"], abs=0.0006)  # printed with 3 decimals
        assert sample(found, "mcrouter_server_proxy_reqs_processing", server=key) == \
            row["pending_reqs"]
        assert sample(found, "mcrouter_server_proxy_reqs_waiting", server=key) == \
            row["inflight_reqs"]
        for field, name in results.items():
            assert sample(found, f"mcrouter_server_memcached_{name}_count", server=key) == \
                row.get(field, 0), (key, name)
        for flag in ("soft_tko", "hard_tko"):
            assert sample(found, f"mcrouter_server_memcached_{flag}", server=key) == row[flag]
    by_address = {key.split(":ascii:")[0]: key for key in per_server}
    assert sample(found, "mcrouter_server_memcached_hard_tko",
                  server=by_address[router.dead]) == 1
    assert sample(found, "mcrouter_server_memcached_soft_tko",
                  server=by_address[router.silent]) == 1
    assert sample(found, "mcrouter_server_memcached_timeout_count",
                  server=by_address[router.silent]) >= 2
    for address in router.live:
        key = by_address[address]
        assert sample(found, "mcrouter_server_memcached_found_count", server=key) == 10
        assert sample(found, "mcrouter_server_memcached_not_found_count", server=key) >= 5
        assert sample(found, "mcrouter_server_memcached_stored_count", server=key) == 10
        assert sample(found, "mcrouter_server_memcached_not_stored_count", server=key) == 1
        assert sample(found, "mcrouter_server_memcached_deleted_count", server=key) == 1
        assert sample(found, "mcrouter_server_memcached_touched_count", server=key) == 1
        assert sample(found, "mcrouter_server_memcached_soft_tko", server=key) == 0
        assert sample(found, "mcrouter_server_memcached_hard_tko", server=key) == 0
    # suspect_servers lists exactly the TKO servers the metrics flag
    tko = {key.split(":ascii:")[0] for key in per_server
           if sample(found, "mcrouter_server_memcached_soft_tko", server=key)
           or sample(found, "mcrouter_server_memcached_hard_tko", server=key)}
    assert {address for address, text in suspects.items() if "status:tko" in text} == tko == \
        {router.dead, router.silent}

    # rates: requests since start-up over seconds since start-up (younger than the window)
    before, ready = router.started_between
    gets = sample(found, "mcrouter_command_count", cmd="get")
    rate = sample(found, "mcrouter_commands", cmd="get")
    assert gets / (scrape_ended - before) <= rate <= gets / (scrape_started - ready)
    assert sample(found, "mcrouter_results", reply="tko") > 0
    assert sample(found, "mcrouter_result_all", reply="tko") == \
        sample(found, "mcrouter_results", reply="tko")

    # types: gauges, and the exporter's counters (untyped when not named *_total)
    for name in ("mcrouter_up", "mcrouter_commands", "mcrouter_servers", "mcrouter_duration_us",
                 "mcrouter_server_memcached_hard_tko", "mcrouter_config_last_success"):
        assert found[name].type == "gauge", name
    for name in ("mcrouter_command_count", "mcrouter_result_count", "mcrouter_clients",
                 "mcrouter_start_time_seconds", "mcrouter_server_memcached_found_count"):
        assert found[name].type == "unknown", name
    assert found["mcrouter_cpu_seconds"].type == "counter"


def test_readme_names_are_served(metrics_router):
    names = served_names(families(scrape(metrics_router.metrics_port)))
    missing = [name for name in README_SERVED + CODE_ONLY_SERVED if name not in names]
    assert not missing, missing
    assert not set(README_NOT_SERVED) & names
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_virtual_memory_bytes", "process_start_time_seconds",
                 "process_open_fds", "process_max_fds"):
        assert name in names


def test_rate_window_is_mcrouters_moving_average():
    now = [100.0]
    window = RateWindow({"cmd_get": 0}, clock=lambda: now[0])
    now[0] = 110.0
    assert window.rates({"cmd_get": 50}) == {"cmd_get": 5.0}  # since start-up
    for _ in range(RATE_WINDOW_SECONDS // 10 + 5):  # a scrape every 10 s, 20 gets a second
        now[0] += 10
        rates = window.rates({"cmd_get": 50 + 20 * (now[0] - 110)})
    assert rates["cmd_get"] == pytest.approx(20.0)
    assert now[0] - window.snapshots[0][0] <= RATE_WINDOW_SECONDS + 10
    assert len(window.snapshots) <= RATE_WINDOW_SECONDS // 10 + 2
    now[0] += 1000  # a scrape after a long pause: the rate since the previous one
    assert window.rates({"cmd_get": 50 + 20 * (now[0] - 110) + 1000})["cmd_get"] == \
        pytest.approx(21.0)
    busy = RateWindow({}, clock=lambda: now[0])
    for _ in range(100):  # many scrapes within a second keep one snapshot per second
        busy.rates({"x": 1})
    assert len(busy.snapshots) == 1


# -- flags ----------------------------------------------------------------------------------

CONFIG = json.dumps({"pools": {"A": {"servers": ["127.0.0.1:1"]}}, "route": "PoolRoute|A"})


def run_router(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pymc.router", "-p", str(free_port()),
                           "--config", CONFIG, *args], capture_output=True, timeout=30,
                          text=True)


@pytest.mark.parametrize("value, message", [
    ("abc", "argument --metrics-port: port must be a port number"),
    ("70000", "argument --metrics-port: port must be between 0 and 65535"),
    ("-1", "argument --metrics-port"),
])
def test_bad_metrics_port_is_a_usage_error(value, message):
    done = run_router(f"--metrics-port={value}")
    assert done.returncode == 64, done
    assert message in done.stderr


def test_metrics_port_in_use_fails_clearly():
    with taken_port() as port:
        done = run_router("--metrics-port", str(port))
    assert done.returncode == 71, done
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr


def test_options_and_help_show_the_flag(start_server, start_router):
    port = free_port()
    router = start_router({"pools": {"A": {"servers": ["127.0.0.1:%d" % start_server().port]}},
                           "route": "PoolRoute|A"}, "--metrics-port", str(port))
    assert router.admin("options(metrics_port)").strip() == str(port).encode()
    help_text = subprocess.run([sys.executable, "-m", "pymc.router", "--help"],
                               capture_output=True, timeout=30, text=True).stdout
    assert "--metrics-port" in help_text


# -- under load -----------------------------------------------------------------------------


def test_scraping_under_load_does_not_stall_clients(start_server, start_router):
    backends = [start_server(), start_server()]
    port = free_port()
    router = start_router({"pools": {"A": {"servers": [
        "127.0.0.1:%d" % s.port for s in backends]}}, "route": "PoolRoute|A"},
        "--metrics-port", str(port))
    wait_for_metrics(port)
    client = router.connect()
    requests, scrapes, worst = serve_while_scraping(client, port, "mcrouter_up 1.0")
    client.close()
    assert scrapes > 10
    assert requests > 100
    assert worst < 0.5, f"a request waited {worst:.3f} s behind a scrape"
