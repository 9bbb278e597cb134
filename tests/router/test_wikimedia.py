"""A config shaped like Wikimedia's production mcrouter config, against 42 real pymc-servers:
per DC 18 main shards and a 3-server gutter pool, ``/<dc>/mw/`` as FailoverWithExptimeRoute,
``/<dc>/mw-wan/`` as OperationSelectorRoute whose reads stay in the local DC and whose sets and
deletes go to that DC through AllSyncRoute (MediaWiki broadcasts them with ``/*/mw-wan/``),
``-R /eqiad/mw/ --send-invalid-route-to-default``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pymc.router.hashing import ch3
from tests.conftest import ServerProcess
from tests.router.conftest import RouterProcess

pytestmark = pytest.mark.integration

DCS = ("eqiad", "codfw")
LOCAL_DC = "eqiad"
SHARDS, GUTTER = 18, 3


def fwe(dc: str) -> dict:
    return {"type": "FailoverWithExptimeRoute",
            "normal": f"PoolRoute|{dc}-servers",
            "failover": f"PoolRoute|{dc}-servers-failover",
            "failover_exptime": 600,
            "failover_errors": ["tko"]}


def wikimedia_config(servers: dict[str, list[ServerProcess]]) -> dict:
    pools = {name: {"servers": ["127.0.0.1:%d" % s.port for s in members]}
             for name, members in servers.items()}
    routes = []
    for dc in DCS:
        routes.append({"aliases": [f"/{dc}/mw/"], "route": fwe(dc)})
        writes = {"type": "AllSyncRoute", "children": [fwe(dc)]}
        routes.append({"aliases": [f"/{dc}/mw-wan/"], "route": {
            "type": "OperationSelectorRoute",
            "default_policy": fwe(LOCAL_DC),
            "operation_policies": {"set": writes, "delete": writes}}})
    return {"pools": pools, "routes": routes}


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    layout = {f"{dc}-servers{suffix}": count for dc in DCS
              for suffix, count in (("", SHARDS), ("-failover", GUTTER))}
    flat = [name for name, count in layout.items() for _ in range(count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = list(pool.map(lambda _: ServerProcess(["-m", "8"]), flat))
    servers: dict[str, list[ServerProcess]] = {name: [] for name in layout}
    for name, server in zip(flat, started):
        servers[name].append(server)
    router = None
    try:
        router = RouterProcess(wikimedia_config(servers),
                               ["-R", "eqiad/mw", "--send-invalid-route-to-default"],
                               tmp_path_factory.mktemp("wikimedia"))
        yield router, servers
    finally:
        if router is not None:
            router.stop()
        for server in started:
            server.stop()


def shard(servers, pool_name: str, key: bytes) -> ServerProcess:
    members = servers[pool_name]
    return members[ch3(key, len(members))]


def direct_get(server: ServerProcess, key: bytes) -> bytes:
    client = server.connect()
    try:
        return client.until_end(b"get %s\r\n" % key)
    finally:
        client.close()


def direct_set(server: ServerProcess, key: bytes, value: bytes) -> None:
    client = server.connect()
    try:
        assert client.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value)) == \
            b"STORED\r\n"
    finally:
        client.close()


def test_local_keys_land_on_the_mcrouter_shard(topology):
    router, servers = topology
    client = router.connect()
    used = set()
    for index in range(60):
        key = b"WANCache:user:%d|#|v" % index
        assert client.call(b"set %s 0 0 1\r\nx\r\n" % key) == b"STORED\r\n"
        target = shard(servers, "eqiad-servers", b"WANCache:user:%d" % index)
        used.add(target.port)
        assert direct_get(target, key) == b"VALUE %s 0 1\r\nx\r\nEND\r\n" % key
        assert direct_get(shard(servers, "codfw-servers", key.split(b"|#|")[0]), key) == \
            b"END\r\n"
    assert len(used) > 12  # the keys spread over the pool
    client.close()


def test_route_admin_agrees_with_where_keys_land(topology):
    router, servers = topology
    for key in (b"a", b"global:thing", b"WANCache:x|#|t"):
        expected = shard(servers, "eqiad-servers", key.split(b"|#|")[0])
        assert router.admin(f"route(get,{key.decode()})") == b"127.0.0.1:%d" % expected.port
        remote = shard(servers, "codfw-servers", key.split(b"|#|")[0])
        assert router.admin(f"route(get,/codfw/mw/{key.decode()})") == \
            b"127.0.0.1:%d" % remote.port


def test_prefixed_keys_go_to_their_dc_without_the_prefix(topology):
    router, servers = topology
    client = router.connect()
    assert client.call(b"set /codfw/mw/remote:1 0 0 2\r\nhi\r\n") == b"STORED\r\n"
    target = shard(servers, "codfw-servers", b"remote:1")
    assert direct_get(target, b"remote:1") == b"VALUE remote:1 0 2\r\nhi\r\nEND\r\n"
    assert client.until_end(b"get /codfw/mw/remote:1\r\n") == \
        b"VALUE /codfw/mw/remote:1 0 2\r\nhi\r\nEND\r\n"
    client.close()


def test_unknown_prefix_goes_to_the_default_route(topology):
    router, servers = topology
    client = router.connect()
    assert client.call(b"set /ulsfo/mw/k9 0 0 1\r\nz\r\n") == b"STORED\r\n"
    assert direct_get(shard(servers, "eqiad-servers", b"k9"), b"k9") == \
        b"VALUE k9 0 1\r\nz\r\nEND\r\n"
    client.close()


def test_wan_purge_with_glob_reaches_both_dcs(topology):
    router, servers = topology
    key = b"WANCache:page:42|#|v"
    hashed = b"WANCache:page:42"
    owners = [shard(servers, f"{dc}-servers", hashed) for dc in DCS]
    for owner in owners:
        direct_set(owner, key, b"cached")
    client = router.connect()
    assert client.call(b"delete /*/mw-wan/%s\r\n" % key) == b"DELETED\r\n"
    client.close()
    for owner in owners:
        assert direct_get(owner, key) == b"END\r\n"


def test_wan_set_broadcast_reaches_both_dcs_and_reads_stay_local(topology):
    router, servers = topology
    key, hashed = b"WANCache:check:7|#|t", b"WANCache:check:7"
    client = router.connect()
    assert client.call(b"set /*/mw-wan/%s 0 0 9\r\nPURGED:11\r\n" % key) == b"STORED\r\n"
    for dc in DCS:
        assert direct_get(shard(servers, f"{dc}-servers", hashed), key) == \
            b"VALUE %s 0 9\r\nPURGED:11\r\nEND\r\n" % key
    # a DC-prefixed write goes to that DC only
    assert client.call(b"set /codfw/mw-wan/%s 0 0 6\r\nremote\r\n" % key) == b"STORED\r\n"
    assert direct_get(shard(servers, "eqiad-servers", hashed), key) == \
        b"VALUE %s 0 9\r\nPURGED:11\r\nEND\r\n" % key
    # reads through either mw-wan prefix are served by the local DC
    for dc in DCS:
        assert client.until_end(b"get /%s/mw-wan/%s\r\n" % (dc.encode(), key)) == \
            b"VALUE /%s/mw-wan/%s 0 9\r\nPURGED:11\r\nEND\r\n" % (dc.encode(), key)
    client.close()


def test_broadcast_get_answers_from_the_default_route(topology):
    router, servers = topology
    key = b"bcast:1"
    direct_set(shard(servers, "eqiad-servers", key), key, b"local")
    direct_set(shard(servers, "codfw-servers", key), key, b"remote")
    client = router.connect()
    assert client.until_end(b"get /*/*/%s\r\n" % key) == \
        b"VALUE /*/*/%s 0 5\r\nlocal\r\nEND\r\n" % key
    client.close()
