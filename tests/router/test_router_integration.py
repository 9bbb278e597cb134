"""pymc-router over real sockets in front of real pymc-servers: routing by Ch3, the text and
meta protocols forwarded, multi-gets reassembled, admin commands, stats, failures as replies."""

from __future__ import annotations

import json
import time

import pytest

from pymc.router.hashing import ch3
from pymc.testing import Router, free_port
from tests.conftest import connect
from tests.router.conftest import RouterProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def router(pymc_mode):
    """pymc.testing's Router, module-scoped: pool A's three servers are started for it."""
    config = {"pools": {"A": {"servers": 3}},
              "routes": [{"aliases": ["/a/a/", "/a/b/"], "route": "PoolRoute|A"},
                         {"aliases": ["/b/x/"], "route": {"type": "ErrorRoute",
                                                          "response": "b is down"}}]}
    with Router(config, "-R", "a/a", "--enable-flush-cmd", mode=pymc_mode) as router:
        yield router


@pytest.fixture(scope="module")
def backends(router):
    return router.servers["A"]


@pytest.fixture
def client(router):
    c = connect(router)
    yield c
    c.close()


def owner(backends, key: bytes):
    return backends[ch3(key, len(backends))]


def test_keys_land_on_the_ch3_shard(client, backends):
    for index in range(40):
        key = b"user:%d" % index
        assert client.call(b"set %s 5 0 2\r\nv%d\r\n" % (key, index % 10)) == b"STORED\r\n"
        direct = connect(owner(backends, key))
        assert direct.until_end(b"get %s\r\n" % key) == \
            b"VALUE %s 5 2\r\nv%d\r\nEND\r\n" % (key, index % 10)
        for other in backends:
            if other is not owner(backends, key):
                c = connect(other)
                assert c.until_end(b"get %s\r\n" % key) == b"END\r\n"
                c.close()
        direct.close()


def test_routing_prefix_is_stripped_and_hash_stop_respected(client, backends):
    assert client.call(b"set /a/b/page:7|#|v 0 0 1\r\nx\r\n") == b"STORED\r\n"
    target = owner(backends, b"page:7")
    direct = connect(target)
    assert direct.until_end(b"get page:7|#|v\r\n") == b"VALUE page:7|#|v 0 1\r\nx\r\nEND\r\n"
    assert client.until_end(b"get /a/b/page:7|#|v\r\n") == \
        b"VALUE /a/b/page:7|#|v 0 1\r\nx\r\nEND\r\n"


def test_multiget_across_shards_keeps_key_order_and_client_keys(client):
    keys = [b"m%d" % i for i in range(30)]
    for key in keys[::2]:
        assert client.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(key), key)) == b"STORED\r\n"
    reply = client.until_end(b"get " + b" ".join(keys) + b"\r\n")
    expected = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(k), k) for k in keys[::2])
    assert reply == expected + b"END\r\n"


def test_unknown_prefix_is_an_error_and_error_route_message(client):
    assert client.until_end(b"get /zz/top/k\r\n") == b"SERVER_ERROR RootRoute: No rh found\r\n"
    assert client.call(b"set /b/x/k 0 0 1\r\nv\r\n") == b"SERVER_ERROR b is down\r\n"


def test_storage_family_and_counters(client):
    assert client.call(b"set n 0 0 1\r\n5\r\n") == b"STORED\r\n"
    assert client.call(b"incr n 10\r\n") == b"15\r\n"
    assert client.call(b"decr n 20\r\n") == b"0\r\n"
    assert client.call(b"add n 0 0 1\r\nx\r\n") == b"NOT_STORED\r\n"
    assert client.call(b"append n 0 0 1\r\nz\r\n") == b"STORED\r\n"
    assert client.call(b"touch n 100\r\n") == b"TOUCHED\r\n"
    gets = client.until_end(b"gets n\r\n")
    cas = int(gets.split(b"\r\n")[0].split()[4])
    assert client.call(b"cas n 0 0 1 %d\r\ny\r\n" % (cas + 1)) == b"EXISTS\r\n"
    assert client.call(b"cas n 0 0 1 %d\r\ny\r\n" % cas) == b"STORED\r\n"
    assert client.call(b"delete n\r\n") == b"DELETED\r\n"
    assert client.call(b"delete n\r\n") == b"NOT_FOUND\r\n"
    assert client.call(b"incr n 1\r\n") == b"NOT_FOUND\r\n"


def test_noreply_is_not_answered_but_applied(client):
    client.send(b"set q 0 0 1 noreply\r\nq\r\ndelete nothing noreply\r\n")
    assert client.until_end(b"get q\r\n") == b"VALUE q 0 1\r\nq\r\nEND\r\n"


def test_meta_commands_route_by_key(client, backends):
    assert client.meta(b"ms meta:1 2 T0 F3\r\nhi\r\n") == b"HD\r\n"
    direct = connect(owner(backends, b"meta:1"))
    assert direct.until_end(b"get meta:1\r\n") == b"VALUE meta:1 3 2\r\nhi\r\nEND\r\n"
    assert client.meta(b"mg meta:1 v f k\r\n") == b"VA 2 f3 kmeta:1\r\nhi\r\n"
    assert client.meta(b"mg /a/b/meta:1 v k\r\n") == b"VA 2 k/a/b/meta:1\r\nhi\r\n"
    # quiet: nominal replies hidden, the rest shown, mn answered after them
    assert client.meta(b"mg missing v q\r\nmg meta:1 v q\r\nmd meta:1 q\r\nmd meta:1 q\r\n") \
        == b"VA 2\r\nhi\r\nNF\r\n"
    assert client.meta(b"ma ctr N0 J7 v\r\nma ctr v\r\n") == b"VA 1\r\n7\r\nVA 1\r\n8\r\n"


def test_admin_commands(router, backends):
    digest = router.admin("config_md5_digest")
    import hashlib
    assert digest == hashlib.md5(router.config_path.read_bytes()).hexdigest()
    assert router.admin("config_file") == str(router.config_path)
    assert router.admin("route(get,somekey)") == owner(backends, b"somekey").address
    assert router.route("/a/b/x|#|y", "set") == [owner(backends, b"x").address]
    assert router.server_for("somekey") is owner(backends, b"somekey")
    tree = router.admin("route_handles(get,somekey)").splitlines()
    assert tree[0] == "root" and tree[-1].startswith("  host|pool=A|id=%d|" % ch3(
        b"somekey", 3))
    pools = json.loads(router.admin("pools"))
    assert [len(pools["A"])] == [3]
    assert router.admin("options(route_prefix)") == "a/a"
    assert router.admin("options(nope)") == "ERROR: options: option nope not found"
    assert router.admin("nope") == "ERROR: unknown command: nope"
    assert router.admin("version").startswith("mcrouter ")
    assert json.loads(router.admin("preprocessed_config"))["pools"]["A"]["servers"]


def test_stats_groups(client):
    client.call(b"set s 0 0 1\r\n1\r\n")
    stats = client.until_end(b"stats\r\n")
    names = [line.split()[1] for line in stats.split(b"\r\n") if line.startswith(b"STAT")]
    for name in (b"version", b"pid", b"uptime", b"num_servers", b"num_servers_up",
                 b"cmd_set_count", b"cmd_get_count", b"duration_us"):
        assert name in names
    servers = client.until_end(b"stats servers\r\n")
    assert servers.count(b"STAT 127.0.0.1:") == 3
    assert b"ascii:plain:notcompressed-1000 avg_latency_us:" in servers
    assert client.call(b"stats nonsense\r\n") == b"CLIENT_ERROR bad stats command\r\n"
    assert client.call(b"version\r\n").startswith(b"VERSION mcrouter")
    assert client.until_end(b"stats suspect_servers\r\n") == b"END\r\n"


def test_stats_rates_and_counts_are_in_mcroutes_groups(client, router):
    """mcrouter's stat_list.h: ``cmd_<op>`` and ``result_<reply>`` are per-second rates
    (detailed, ods, all), ``result_<reply>_count`` counts (count, ods, all)."""
    for i in range(20):
        client.call(b"set rate%d 0 0 1\r\n1\r\n" % i)
    time.sleep(0.3)
    detailed, every, count = router.stats("detailed"), router.stats("all"), router.stats("count")
    assert float(detailed["cmd_set"]) > 0, detailed["cmd_set"]  # sets per second
    assert int(every["cmd_set_count"]) >= 20 and int(count["cmd_set_count"]) >= 20
    for name in ("result_error", "result_tko", "result_connect_error_all"):
        assert name in detailed and name in every
        assert name + "_count" in every and name + "_count" in count
        assert name + "_count" not in detailed
    assert "result_error" not in count


def test_get_count_counts_keys_on_every_get_path(client, router):
    before = int(router.stats("count")["cmd_get_count"])
    for key in (b"c1", b"c2", b"c3"):  # one line per read: the single-get fast path
        assert client.until_end(b"get %s\r\n" % key) == b"END\r\n"
    assert client.until_end(b"get c1 c2\r\n") == b"END\r\n"
    client.send(b"get c1\r\nget c2\r\n")  # one read of simple gets
    assert client.read_all() == b"END\r\nEND\r\n"
    assert int(router.stats("count")["cmd_get_count"]) - before == 7


def test_flush_all_routed_when_enabled(client):
    assert client.call(b"flush_all\r\n") == b"OK\r\n"


def test_bad_commands_get_memcached_errors(client):
    assert client.call(b"bogus\r\n") == b"ERROR\r\n"
    assert client.call(b"set k 0 0 notanumber\r\n") == b"CLIENT_ERROR bad command line format\r\n"
    assert client.call(b"get " + b"k" * 251 + b"\r\n").startswith(b"CLIENT_ERROR")


def test_dead_backend_gives_connection_error_then_tko_and_others_still_work(mcrouter):
    dead_port = free_port()  # nothing listens there
    router = mcrouter({"pools": {"A": {"servers": ["live", "127.0.0.1:%d" % dead_port]}},
                       "route": "PoolRoute|A"})
    c = connect(router)
    dead_key = next(b"k%d" % i for i in range(100) if ch3(b"k%d" % i, 2) == 1)
    live_key = next(b"k%d" % i for i in range(100) if ch3(b"k%d" % i, 2) == 0)
    assert c.call(b"set %s 0 0 1\r\nx\r\n" % dead_key) == b"SERVER_ERROR connection error\r\n"
    assert c.call(b"set %s 0 0 1\r\nx\r\n" % live_key) == b"STORED\r\n"
    # the refused connect made the server hard TKO: fast-fail with mcrouter's reason;
    # the first error among the keys replaces END, as mcrouter's multi-op does
    unavailable = b"SERVER_ERROR Server unavailable. Reason: mc_res_connect_error\r\n"
    assert c.until_end(b"get %s %s\r\n" % (live_key, dead_key)) == \
        b"VALUE %s 0 1\r\nx\r\n" % live_key + unavailable
    assert c.until_end(b"stats suspect_servers\r\n") == \
        b"STAT 127.0.0.1:%d status:tko num_failures:2\r\nEND\r\n" % dead_port
    assert router.stats("suspect_servers") == {
        "127.0.0.1:%d" % dead_port: "status:tko num_failures:2"}
    c.close()


def test_server_timeout(start_router, silent_backend):
    config = {"pools": {"A": {"servers": [silent_backend], "server_timeout": 200}},
              "route": "PoolRoute|A"}
    router = start_router(config)
    c = router.connect()
    assert c.until_end(b"get k\r\n") == b"SERVER_ERROR timeout\r\n"
    c.close()


def test_bad_config_refuses_to_start(tmp_path):
    with pytest.raises(RuntimeError, match="Unknown RouteHandle: NoSuchRoute"):
        RouterProcess({"route": "NoSuchRoute"}, [], tmp_path)
    with pytest.raises(RuntimeError, match="both 'route' and 'routes'"):
        RouterProcess({"route": "NullRoute", "routes": []}, [], tmp_path)


def test_batched_gets_fail_over_key_by_key(mcrouter):
    """Multi-gets are batched per server; a failed batch still fails over per key."""
    config = {"pools": {"dead": {"servers": ["127.0.0.1:%d" % free_port()]},
                        "live": {"servers": ["live"]}},
              "route": {"type": "FailoverRoute",
                        "children": ["PoolRoute|dead", "PoolRoute|live"]}}
    router = mcrouter(config)
    direct = connect(router.named["live"])
    for key in (b"a", b"c"):
        assert direct.call(b"set %s 0 0 1\r\n%s\r\n" % (key, key)) == b"STORED\r\n"
    c = connect(router)
    assert c.until_end(b"get a b c a\r\n") == \
        b"VALUE a 0 1\r\na\r\nVALUE c 0 1\r\nc\r\nVALUE a 0 1\r\na\r\nEND\r\n"
    assert c.until_end(b"get c\r\n") == b"VALUE c 0 1\r\nc\r\nEND\r\n"
    assert c.until_end(b"gets b\r\n") == b"END\r\n"
    c.close()
    direct.close()


def test_multiget_mixes_batched_and_routed_keys(mcrouter):
    """Keys of one multi-get may go to several servers, through prefixes that are stripped,
    and through routes that cannot be batched (MissFailoverRoute)."""
    config = {"pools": {"A": {"servers": ["first"]}, "B": {"servers": ["second"]}},
              "routes": {"/r/a/": "PoolRoute|A", "/r/b/": "PoolRoute|B",
                         "/r/m/": {"type": "MissFailoverRoute",
                                   "children": ["PoolRoute|A", "PoolRoute|B"]}}}
    router = mcrouter(config, "-R", "/r/a/")
    a, b = connect(router.named["first"]), connect(router.named["second"])
    assert a.call(b"set k1 0 0 2\r\na1\r\n") == b"STORED\r\n"
    assert b.call(b"set k2 0 0 2\r\nb2\r\n") == b"STORED\r\n"
    c = connect(router)
    assert c.until_end(b"get /r/b/k2 k1 /r/a/k1 /r/m/k2 nope /r/b/k1\r\n") == (
        b"VALUE /r/b/k2 0 2\r\nb2\r\nVALUE k1 0 2\r\na1\r\nVALUE /r/a/k1 0 2\r\na1\r\n"
        b"VALUE /r/m/k2 0 2\r\nb2\r\nEND\r\n")
    c.close()


def test_pipelined_plain_gets_keep_order_across_shards(client, backends):
    keys = [b"p%d" % i for i in range(60)]
    for key in keys[::3]:
        assert client.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(key), key)) == b"STORED\r\n"
    client.send(b"".join(b"get %s\r\n" % key for key in keys))
    for key in keys:
        if key in keys[::3]:
            assert client.line() == b"VALUE %s 0 %d\r\n" % (key, len(key))
            assert client.line() == key + b"\r\n"
        assert client.line() == b"END\r\n"
    # a mix of plain and special lines in one read still answers in order
    client.send(b"get p0\r\nget /a/b/p0\r\nget __mcrouter__.hostid\r\nget p1\r\n")
    assert client.line() == b"VALUE p0 0 2\r\n" and client.line() == b"p0\r\n"
    assert client.line() == b"END\r\n"
    assert client.line() == b"VALUE /a/b/p0 0 2\r\n" and client.line() == b"p0\r\n"
    assert client.line() == b"END\r\n"
    assert client.line().startswith(b"VALUE __mcrouter__.hostid 0 ")
    client.line()
    assert client.line() == b"END\r\n" and client.line() == b"END\r\n"
