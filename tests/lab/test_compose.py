"""The Compose project generated from the lab topology, without Docker: networks, addresses,
published ports, configs that route like the lab's, the committed compose/ files in sync with
the generator, and the health checks against real processes."""

from __future__ import annotations

import ipaddress
import json
import sys

import pytest

from pymc.lab import compose, health
from pymc.lab.faults import link_mode
from pymc.lab.topology import TopologyError
from tests.conftest import REPO, ServerProcess
from tests.router.conftest import RouterProcess


@pytest.fixture(scope="module")
def cplan():
    return compose.container_plan()


@pytest.fixture(scope="module")
def project(cplan):
    return compose.compose_file(cplan, "..")


def test_networks_are_the_issue_names_with_explicit_subnets(project):
    assert set(project["networks"]) == {"wan", "dc1", "dc2"}
    subnets = {name: net["ipam"]["config"][0]["subnet"]
               for name, net in project["networks"].items()}
    assert subnets == {"wan": "172.30.0.0/24", "dc1": "172.30.1.0/24", "dc2": "172.30.2.0/24"}
    assert "version" not in project


def test_every_node_is_a_service_on_its_dc_network_and_only_edges_on_wan(cplan, project):
    services = project["services"]
    assert set(services) == {n.name for n in cplan.nodes}
    assert len(services) == 2 * (4 + 2 + 2 + 1)
    seen: dict[str, set] = {}
    for node in cplan.nodes:
        networks = services[node.name]["networks"]
        home = "dc1" if node.dc == "eqiad" else "dc2"
        expected = {home, "wan"} if node.kind in ("router", "proxy") else {home}
        assert set(networks) == expected, node.name
        for name, settings in networks.items():
            ip = ipaddress.ip_address(settings["ipv4_address"])
            assert ip in ipaddress.ip_network(project["networks"][name]["ipam"]["config"][0]
                                              ["subnet"])
            assert ip not in seen.setdefault(name, set()), f"{ip} twice on {name}"
            seen[name].add(ip)


def test_ports_are_published_on_loopback_only(cplan, project):
    host_ports, metrics_ports = [], []
    for node in cplan.nodes:
        published, *metrics = project["services"][node.name]["ports"]
        host, host_port, inside = published.split(":")
        assert host == "127.0.0.1"
        assert int(inside) == {"server": 11211, "gutter": 11211, "router": 4442,
                               "proxy": 7000}[node.kind]
        host_ports.append(int(host_port))
        assert len(metrics) == (node.kind != "proxy")
        for line in metrics:
            host, host_port, inside = line.split(":")
            assert host == "127.0.0.1" and inside == ("9442" if node.kind == "router" else "9150")
            metrics_ports.append(int(host_port))
            assert f"--metrics-port {inside}" in " ".join(project["services"][node.name]
                                                          ["command"])
    assert host_ports == list(range(11600, 11600 + len(cplan.nodes)))
    assert metrics_ports == list(range(11618, 11618 + 16))
    free = compose.compose_file(compose.container_plan(host_port_base=0), "..")
    assert all(p.startswith("127.0.0.1::") for s in free["services"].values()
               for p in s["ports"])


def test_routers_reach_local_links_on_the_dc_network_and_remote_ones_on_wan(cplan):
    config = cplan.mcrouter_config("eqiad")
    eqiad_proxy, codfw_proxy = cplan.ips["eqiad-proxy"], cplan.ips["codfw-proxy"]
    for address in config["pools"]["eqiad-servers"]["servers"]:
        assert address.split(":")[0] == eqiad_proxy["dc1"]
    for address in config["pools"]["codfw-servers-failover"]["servers"]:
        assert address.split(":")[0] == codfw_proxy["wan"]
    links = cplan.proxy_links("codfw-proxy")
    assert links["codfw-mc2/eqiad"] == {"listen": "0.0.0.0:12003",
                                        "upstream": f"{cplan.node_ip('codfw-mc2')}:11211"}
    # the same shape (and so the same shards) as the process lab's configs
    lab_plan = compose.topo.plan(compose.topo.load_topology(None), 1)
    assert {k: len(v["servers"]) for k, v in config["pools"].items()} == \
        {k: len(v["servers"]) for k, v in lab_plan.mcrouter_config("eqiad")["pools"].items()}
    assert config["routes"] == json.loads(json.dumps(lab_plan.mcrouter_config("eqiad")
                                                     ["routes"]))


def test_commands_and_healthchecks(cplan, project):
    router = project["services"]["codfw-router2"]
    assert router["command"][:5] == ["pymc-router", "-p", "4442", "--listen-addresses",
                                     "0.0.0.0"]
    assert "file:/etc/pymc/codfw-mcrouter.json" in router["command"]
    assert router["command"][router["command"].index("-R") + 1] == "/codfw/mw/"
    assert router["healthcheck"]["test"][-3:] == ["router", "127.0.0.1:4442",
                                                  "/etc/pymc/codfw-mcrouter.json"]
    server = project["services"]["eqiad-gutter1"]
    assert server["command"][:5] == ["pymc-server", "-p", "11211", "-l", "0.0.0.0"]
    assert server["healthcheck"]["test"][-2:] == ["server", "127.0.0.1:11211"]
    proxy = project["services"]["eqiad-proxy"]
    assert "/etc/pymc/eqiad-proxy-links.json" in proxy["command"]


@pytest.mark.parametrize("kwargs, message", [
    ({"subnet": "10.0.0.0/25"}, "/22 or larger"),
    ({"subnet": "fd00::/64"}, "IPv4"),
    ({"subnet": "banana"}, "expected an IPv4 network"),
    ({"project": "My Lab"}, "lowercase"),
    ({"host_port_base": 65530}, "no room"),
    ({"topology": {"dcs": [{"name": f"dc{i}", "routers": 64} for i in range(4)]}},
     "network wan needs 260 addresses"),
])
def test_bad_settings_say_what_to_change(kwargs, message):
    with pytest.raises(TopologyError, match=message):
        compose.container_plan(**kwargs)


def test_yaml_is_what_compose_reads():
    yaml = pytest.importorskip("yaml")
    cplan = compose.container_plan()
    data = compose.compose_file(cplan, "..")
    text = compose.to_yaml(data)
    parsed = yaml.safe_load(text)
    expected = json.loads(json.dumps(data, default=lambda o: getattr(o, "value", None)))
    for service in expected["services"].values():
        merged = dict(expected["x-pymc"])
        merged.update({k: v for k, v in service.items() if k != "<<"})
        service.clear()
        service.update(merged)
    for service in parsed["services"].values():
        service.pop("<<", None)
    assert parsed["services"] == expected["services"]


def test_committed_compose_directory_is_the_generators_output(tmp_path):
    """compose/ in the repository is regenerated, never hand-edited: a topology change shows
    up here until `pymc lab compose generate` is run again."""
    compose.generate(compose.container_plan(), tmp_path, build_context="..")
    committed = REPO / "compose"
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated
    for relative in generated:
        assert (committed / relative).read_text() == (tmp_path / relative).read_text(), \
            f"compose/{relative} is stale: run `pymc lab compose generate`"


def test_link_modes_with_wan_latency():
    slow = {"kind": "slow", "arg": 20.0}
    assert link_mode("eqiad", "codfw", None, [], 50) == "slow 50"
    assert link_mode("eqiad", "eqiad", None, [], 50) == "pass"
    assert link_mode("eqiad", "codfw", slow, [], 50) == "slow 70"
    assert link_mode("eqiad", "eqiad", slow, [], 50) == "slow 20"
    assert link_mode("eqiad", "codfw", {"kind": "hang", "arg": None}, [], 50) == "hang"
    assert link_mode("eqiad", "codfw", None, [["codfw", "eqiad"]], 50) == "refuse"


# --- health checks against real processes


def test_server_health(start_server):
    server = start_server()
    assert health.main(["server", f"127.0.0.1:{server.port}"]) == 0
    server.stop()
    assert health.main(["server", f"127.0.0.1:{server.port}"]) == 1


def test_router_health_compares_the_live_config_with_the_file(tmp_path, capsys):
    backend = ServerProcess([])
    router = None
    try:
        config = tmp_path / "mcrouter.json"
        config.write_text(json.dumps({"pools": {"A": {"servers": [
            f"127.0.0.1:{backend.port}"]}}, "route": "PoolRoute|A"}))
        router = RouterProcess(config, ["--disable-reload-configs"], tmp_path)
        address = f"127.0.0.1:{router.port}"
        assert health.main(["router", address, str(config)]) == 0
        config.write_text(config.read_text() + "\n")  # a new config the router has not loaded
        assert health.main(["router", address, str(config)]) == 1
        assert "live config md5" in capsys.readouterr().err
        assert health.main(["router", address, str(tmp_path / "missing.json")]) == 1
    finally:
        if router is not None:
            router.stop()
        backend.stop()


def test_proxy_health_and_usage(tmp_path):
    from pymc.lab.fault_proxy import FaultProxyProcess
    with FaultProxyProcess("127.0.0.1:9") as proxy:
        assert health.main(["proxy", proxy.control_address]) == 0
    assert health.main(["proxy", proxy.control_address]) == 1
    assert health.main(["bogus"]) == 2
    assert health.main(["router", "127.0.0.1:1"]) == 2


def test_health_module_runs_as_a_command(start_server):
    import subprocess
    server = start_server()
    done = subprocess.run([sys.executable, "-m", "pymc.lab.health", "server",
                           f"127.0.0.1:{server.port}"], timeout=30)
    assert done.returncode == 0


def test_generate_command_writes_a_project(tmp_path, capsys):
    out = tmp_path / "project"
    assert compose.main(["--out", str(out), "--project", "lab2", "--subnet",
                         "10.77.0.0/16", "--host-port-base", "0"]) == 0
    assert (out / ".env").read_text() == "COMPOSE_PROJECT_NAME=lab2\n"
    text = (out / "docker-compose.yml").read_text()
    assert '"10.77.1.0/24"' in text and "127.0.0.1::4442" in text
    assert compose.load_plan(out).as_dict()["subnet"] == "10.77.0.0/16"
    assert compose.main(["--out", str(out), "--subnet", "nope"]) == 1
    assert "pymc lab compose generate: subnet" in capsys.readouterr().err
    with pytest.raises(compose.ComposeError, match="generate the Compose project first"):
        compose.load_plan(tmp_path / "elsewhere")
