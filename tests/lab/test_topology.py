"""Topology as data: nodes, ports and links of the default two-DC lab, and the mcrouter configs
generated from it, loaded by pymc-router's own config loader (no processes)."""

from __future__ import annotations

import json
import socket

import pytest

from pymc.lab import topology as topo
from pymc.protocol.messages import Request
from pymc.router.config import load
from pymc.router.hashing import ch3
from pymc.router.options import RouterOptions
from pymc.router.routes import destination as destination_module

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def plan():
    return topo.plan(topo.load_topology(None), 11500)


def test_default_topology_nodes_and_ports(plan):
    names = [n.name for n in plan.nodes]
    for dc in ("eqiad", "codfw"):
        assert [n.name for n in plan.nodes_of("server", dc)] == [f"{dc}-mc{i}" for i in range(1, 5)]
        assert [n.name for n in plan.nodes_of("gutter", dc)] == [f"{dc}-gutter1", f"{dc}-gutter2"]
        assert [n.name for n in plan.nodes_of("router", dc)] == [f"{dc}-router1",
                                                                 f"{dc}-router2"]
        assert plan.nodes_of("proxy", dc)[0].name == f"{dc}-proxy"
    assert len(names) == len(set(names)) == 18
    # Every cache node has one link per client DC, on its own DC's proxy.
    assert len(plan.links) == 12 * 2
    link = plan.link("eqiad-mc1", "codfw")
    assert (link.name, link.proxy, link.wan) == ("eqiad-mc1/codfw", "eqiad-proxy", True)
    assert not plan.link("eqiad-mc1", "eqiad").wan
    ports = [n.port for n in plan.nodes] + [link.port for link in plan.links]
    assert sorted(ports) == list(range(11500, 11500 + 42))
    assert plan.node("eqiad-mc1").port == 11500 and plan.node("eqiad-router1").port == 11512


def test_free_ports_when_base_port_is_zero():
    plan = topo.plan({}, 0)
    ports = [n.port for n in plan.nodes] + [link.port for link in plan.links]
    assert len(set(ports)) == len(ports) and all(ports)


def test_router_command_line(plan, tmp_path):
    argv = plan.argv(plan.node("codfw-router2"), tmp_path)
    line = " ".join(argv)
    assert "-m pymc.router" in line
    assert f"--config file:{tmp_path}/configs/codfw-mcrouter.json" in line
    assert "-R /codfw/mw/ --send-invalid-route-to-default --timeouts-until-tko 3" in line
    assert "--probe-timeout-initial 1000" in line and "-t 250" in line


@pytest.mark.parametrize("bad, message", [
    ({"dcs": []}, "dcs"),
    ({"dcs": [{"name": "a", "servers": 0}]}, "dcs[0].servers"),
    ({"dcs": [{"name": "a"}, {"name": "a"}]}, "unique"),
    ({"router": {"wan_writes": "some"}}, "wan_writes"),
    ({"routr": {}}, "unknown topology key 'routr'"),
    ({"router": {"bogus": 1}}, "router.bogus"),
    ({"base_port": 70000}, "base_port"),
])
def test_bad_topologies_say_what_is_wrong(bad, message):
    with pytest.raises(topo.TopologyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        topo.load_topology(bad)


def test_topology_file_roundtrip(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"dcs": [{"name": "east", "servers": 2, "gutters": 1,
                                         "routers": 1}], "base_port": 0}))
    plan = topo.plan(topo.load_topology(path))
    assert [n.name for n in plan.nodes] == ["east-mc1", "east-mc2", "east-gutter1",
                                            "east-router1", "east-proxy"]
    with pytest.raises(topo.TopologyError, match="not valid JSON"):
        (tmp_path / "bad.json").write_text("{")
        topo.load_topology(tmp_path / "bad.json")


def test_port_in_use_is_named():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        plan = topo.plan({}, sock.getsockname()[1])
        with pytest.raises(topo.PortInUse, match=r"eqiad-mc1\).*--base-port"):
            topo.check_ports_free(plan)
    finally:
        sock.close()


def test_config_has_wikimedias_shape(plan):
    config = plan.mcrouter_config("eqiad")
    assert set(config["pools"]) == {"eqiad-servers", "eqiad-servers-failover",
                                    "codfw-servers", "codfw-servers-failover"}
    # Pools list the links this DC's routers use: local links for eqiad, WAN links for codfw.
    assert config["pools"]["codfw-servers"]["servers"][0] == \
        "127.0.0.1:%d" % plan.link("codfw-mc1", "eqiad").port
    routes = {r["aliases"][0]: r["route"] for r in config["routes"]}
    assert set(routes) == {"/eqiad/mw/", "/eqiad/mw-wan/", "/codfw/mw/", "/codfw/mw-wan/"}
    assert routes["/eqiad/mw/"] == {"type": "FailoverWithExptimeRoute",
                                    "normal": "PoolRoute|eqiad-servers",
                                    "failover": "PoolRoute|eqiad-servers-failover",
                                    "failover_exptime": 600, "failover_errors": ["tko"]}
    wan = routes["/codfw/mw-wan/"]
    assert wan["type"] == "OperationSelectorRoute"
    assert wan["default_policy"] == routes["/eqiad/mw/"]  # reads stay local
    assert wan["operation_policies"]["set"] == {"type": "AllSyncRoute",
                                                "children": [routes["/codfw/mw/"]]}
    assert wan["operation_policies"]["delete"] == wan["operation_policies"]["set"]


def _destinations(config, op: str, key: str) -> list[str]:
    recorded: list = []
    destination_module.RECORDER = recorded
    try:
        request = Request(op.encode(), [key.encode()],
                          data=b"x" if op == "set" else None)
        config.root.route(request, lambda reply: None)
    finally:
        destination_module.RECORDER = None
    return [str(d.access_point) for d in recorded]


@pytest.mark.parametrize("dc", ["eqiad", "codfw"])
def test_generated_configs_load_and_route_to_the_expected_shard(plan, tmp_path, dc):
    topo.write_configs(plan, tmp_path)
    options = RouterOptions(config=f"file:{topo.config_path(tmp_path, dc)}",
                            route_prefix=plan.route_prefix(dc),
                            send_invalid_route_to_default=True)
    config = load(options)
    other = "codfw" if dc == "eqiad" else "eqiad"

    def link_address(server_dc: str, key: str) -> str:
        servers = plan.nodes_of("server", server_dc)
        server = servers[ch3(key.split("|#|")[0].encode(), len(servers))]
        return "127.0.0.1:%d" % plan.link(server.name, dc).port

    for key in ("user:1", "WANCache:page:42|#|v", "global:x"):
        assert _destinations(config, "get", key) == [link_address(dc, key)]
        assert _destinations(config, "get", f"/{other}/mw/{key}") == [link_address(other, key)]
        # mw-wan reads stay local, writes go to the prefix's DC.
        assert _destinations(config, "get", f"/{other}/mw-wan/{key}") == \
            [link_address(dc, key)]
        assert _destinations(config, "set", f"/{other}/mw-wan/{key}") == \
            [link_address(other, key)]
    # The links file of each proxy points every link at its server.
    links = json.loads(topo.links_path(tmp_path, f"{dc}-proxy").read_text())
    assert links[f"{dc}-mc2/{other}"] == {
        "listen": "127.0.0.1:%d" % plan.link(f"{dc}-mc2", other).port,
        "upstream": "127.0.0.1:%d" % plan.node(f"{dc}-mc2").port}


def test_wan_writes_all_sends_one_prefix_to_every_dc(tmp_path):
    plan = topo.plan({"router": {"wan_writes": "all"}}, 11500)
    routes = {r["aliases"][0]: r["route"] for r in plan.mcrouter_config("eqiad")["routes"]}
    children = routes["/eqiad/mw-wan/"]["operation_policies"]["set"]["children"]
    assert [c["normal"] for c in children] == ["PoolRoute|eqiad-servers",
                                               "PoolRoute|codfw-servers"]
