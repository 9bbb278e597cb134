"""A lab topology as data, and everything derived from it: nodes, ports, fault-proxy links and
the mcrouter configs.

The topology file is JSON (every key optional; these are the defaults)::

    {
      "name": "wikimedia-mini",
      "host": "127.0.0.1",
      "base_port": 11500,            // 0: any free ports; `pymc lab up --base-port` overrides
      "dcs": [                       // data centres; node names are <dc>-mc<i>, <dc>-gutter<i>,
        {"name": "eqiad", "servers": 4, "gutters": 2, "routers": 2},   // <dc>-router<i>
        {"name": "codfw", "servers": 4, "gutters": 2, "routers": 2}
      ],
      "server": {"memory_mb": 8, "args": []},             // pymc-server -m, extra flags
      "router": {
        "route_prefix": "/{dc}/mw/",   // -R of a DC's routers ({dc} = the router's DC)
        "server_timeout_ms": 250,      // -t
        "timeouts_until_tko": 3,       // --timeouts-until-tko
        "probe_timeout_initial_ms": 1000,   // -r / --probe-timeout-initial
        "probe_timeout_max_ms": 3000,  // --probe-timeout-max (short: a healed node is back fast)
        "failover_exptime": 600,       // FailoverWithExptimeRoute's clamp for gutter sets
        "wan_writes": "own",           // sets/deletes of /<dc>/mw-wan/: "own" = that DC only
                                       // (Wikimedia; /*/mw-wan/ then reaches every DC once),
                                       // "all" = every DC from any one prefix
        "args": []                     // extra pymc-router flags
      }
    }

``memory_mb`` 8 keeps the whole default lab under 600 MB RSS even with every cache full
(a full ``-m 8`` pymc-server is about 33 MB, an idle one 22 MB, a router 28 MB).

Comments and trailing commas are not JSON and are refused here (keep the file plain JSON).

What it becomes (``plan``): per DC, ``servers`` main shards (pool ``<dc>-servers``),
``gutters`` gutter shards (pool ``<dc>-servers-failover``) and ``routers`` routers (the
"app nodes"), plus one fault proxy per DC (``<dc>-proxy``) in front of that DC's servers.
Routers never talk to a server directly: for every server and every DC whose routers use it
there is one *link* ``<server>/<client dc>`` (``eqiad-mc1/eqiad`` is local, ``eqiad-mc1/codfw``
crosses the WAN), a port on the server's DC proxy forwarding to the server. A DC's mcrouter
config (``configs/<dc>-mcrouter.json`` in the lab directory, used by both of its routers) lists
each pool by the links of that DC, so a fault on a node is set on all its links and a
partition on the WAN links only.

Ports, from ``base_port`` upwards: every DC's servers then gutters, then every router, then
per DC proxy its control port and its links. With base port 0 each is a free port.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TOPOLOGY: dict = {
    "name": "wikimedia-mini",
    "host": "127.0.0.1",
    "base_port": 11500,
    "dcs": [
        {"name": "eqiad", "servers": 4, "gutters": 2, "routers": 2},
        {"name": "codfw", "servers": 4, "gutters": 2, "routers": 2},
    ],
    "server": {"memory_mb": 8, "args": []},
    "router": {
        "route_prefix": "/{dc}/mw/",
        "server_timeout_ms": 250,
        "timeouts_until_tko": 3,
        "probe_timeout_initial_ms": 1000,
        "probe_timeout_max_ms": 3000,
        "failover_exptime": 600,
        "wan_writes": "own",
        "args": [],
    },
}

KINDS = ("server", "gutter", "router", "proxy")


class TopologyError(ValueError):
    """A topology file that cannot be used; the message says what to change."""


class PortInUse(TopologyError):
    pass


@dataclass
class Node:
    name: str
    kind: str  # server | gutter | router | proxy
    dc: str
    port: int  # for a proxy: its control port
    index: int = 0  # 1-based within its kind and DC

    @property
    def is_cache(self) -> bool:
        return self.kind in ("server", "gutter")


@dataclass
class Link:
    """A fault-proxy port on ``proxy`` forwarding to ``server``, used by ``client_dc``'s
    routers."""
    name: str
    server: str
    server_dc: str
    client_dc: str
    proxy: str
    port: int

    @property
    def wan(self) -> bool:
        return self.server_dc != self.client_dc


@dataclass
class Plan:
    topology: dict
    host: str
    nodes: list[Node] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    @property
    def dcs(self) -> list[str]:
        return [dc["name"] for dc in self.topology["dcs"]]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def nodes_of(self, kind: str | None = None, dc: str | None = None) -> list[Node]:
        return [n for n in self.nodes
                if (kind is None or n.kind == kind) and (dc is None or n.dc == dc)]

    def links_to(self, server: str) -> list[Link]:
        return [link for link in self.links if link.server == server]

    def link(self, server: str, client_dc: str) -> Link:
        for link in self.links:
            if link.server == server and link.client_dc == client_dc:
                return link
        raise KeyError(f"{server}/{client_dc}")

    def address(self, port: int) -> str:
        return f"{self.host}:{port}"

    def route_prefix(self, dc: str) -> str:
        return self.topology["router"]["route_prefix"].format(dc=dc)

    # --- what each DC's routers see

    def link_address(self, link: Link) -> str:
        """Where ``link.client_dc``'s routers reach the link (on loopback: the proxy's port)."""
        return self.address(link.port)

    def mcrouter_config(self, client_dc: str) -> dict:
        """The mcrouter config of ``client_dc``'s routers (Wikimedia's shape, see
        MCROUTER-NOTES.md "Wikimedia production")."""
        router = self.topology["router"]
        pools = {}
        for dc in self.dcs:
            for kind, pool in (("server", f"{dc}-servers"), ("gutter", f"{dc}-servers-failover")):
                pools[pool] = {"servers": [self.link_address(self.link(n.name, client_dc))
                                           for n in self.nodes_of(kind, dc)]}

        def fwe(dc: str) -> dict:
            return {"type": "FailoverWithExptimeRoute",
                    "normal": f"PoolRoute|{dc}-servers",
                    "failover": f"PoolRoute|{dc}-servers-failover",
                    "failover_exptime": router["failover_exptime"],
                    "failover_errors": ["tko"]}

        routes = []
        for dc in self.dcs:
            routes.append({"aliases": [f"/{dc}/mw/"], "route": fwe(dc)})
            targets = [fwe(dc)] if router["wan_writes"] == "own" else [fwe(d) for d in self.dcs]
            writes = {"type": "AllSyncRoute", "children": targets}
            routes.append({"aliases": [f"/{dc}/mw-wan/"], "route": {
                "type": "OperationSelectorRoute",
                "default_policy": fwe(client_dc),  # reads stay local
                "operation_policies": {"set": writes, "delete": writes}}})
        return {"pools": pools, "routes": routes}

    def proxy_links(self, proxy: str) -> dict:
        """The links file of one fault proxy (``--links-file``)."""
        return {link.name: {"listen": self.address(link.port),
                            "upstream": self.address(self.node(link.server).port)}
                for link in self.links if link.proxy == proxy}

    # --- command lines

    def server_flags(self) -> list[str]:
        """pymc-server's flags beyond its address: the same in the lab and in containers."""
        server = self.topology["server"]
        return ["-m", str(server["memory_mb"]), *server["args"]]

    def router_flags(self, dc: str, config: str) -> list[str]:
        """pymc-router's flags beyond its address, for a router of ``dc`` reading ``config``."""
        router = self.topology["router"]
        return ["--config", f"file:{config}",
                "-R", self.route_prefix(dc), "--send-invalid-route-to-default",
                "--timeouts-until-tko", str(router["timeouts_until_tko"]),
                "--probe-timeout-initial", str(router["probe_timeout_initial_ms"]),
                "--probe-timeout-max", str(router["probe_timeout_max_ms"]),
                "-t", str(router["server_timeout_ms"]), *router["args"]]

    def argv(self, node: Node, lab_dir: Path) -> list[str]:
        python = sys.executable
        if node.is_cache:
            return [python, "-m", "pymc.server", "-p", str(node.port), "-l", self.host,
                    *self.server_flags()]
        if node.kind == "router":
            return [python, "-m", "pymc.router", "-p", str(node.port),
                    "--listen-addresses", self.host,
                    *self.router_flags(node.dc, str(config_path(lab_dir, node.dc)))]
        return [python, "-m", "pymc.lab.fault_proxy",
                "--links-file", str(links_path(lab_dir, node.name)),
                "--control", self.address(node.port)]


def config_path(lab_dir: Path, dc: str) -> Path:
    return Path(lab_dir) / "configs" / f"{dc}-mcrouter.json"


def links_path(lab_dir: Path, proxy: str) -> Path:
    return Path(lab_dir) / "configs" / f"{proxy}-links.json"


# --- reading and checking a topology


def default_topology() -> dict:
    return copy.deepcopy(DEFAULT_TOPOLOGY)


def load_topology(source=None) -> dict:
    """A complete, checked topology from None (the default), a dict or a JSON file path."""
    if source is None:
        data: dict = {}
    elif isinstance(source, dict):
        data = copy.deepcopy(source)
    else:
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TopologyError(f"cannot read topology {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise TopologyError(f"topology {path} is not valid JSON: {exc}") from None
    return validate(data)


def validate(data) -> dict:
    if not isinstance(data, dict):
        raise TopologyError("a topology is a JSON object; see `pydoc pymc.lab.topology`")
    result = default_topology()
    _merge(result, data, "")
    host = result["host"]
    if not isinstance(host, str) or not host:
        raise TopologyError("host: expected an address such as 127.0.0.1")
    if not _is_port(result["base_port"]):
        raise TopologyError("base_port: expected 0 (free ports) or a port from 1 to 65535")
    dcs = result["dcs"]
    if not isinstance(dcs, list) or not dcs:
        raise TopologyError('dcs: expected a list such as [{"name": "eqiad"}, ...]')
    checked, names = [], set()
    for i, dc in enumerate(dcs):
        if not isinstance(dc, dict) or not isinstance(dc.get("name"), str):
            raise TopologyError(f'dcs[{i}]: expected {{"name": ..., "servers": N, ...}}')
        unknown = set(dc) - {"name", "servers", "gutters", "routers"}
        if unknown:
            raise TopologyError(f"dcs[{i}]: unknown key(s) {', '.join(sorted(unknown))}; "
                                "known: name, servers, gutters, routers")
        name = dc["name"]
        if not name.replace("_", "").isalnum() or name in names:
            raise TopologyError(f"dcs[{i}].name: {name!r} must be unique letters/digits")
        names.add(name)
        full = {"name": name, "servers": dc.get("servers", 4), "gutters": dc.get("gutters", 2),
                "routers": dc.get("routers", 2)}
        for key in ("servers", "gutters", "routers"):
            if not isinstance(full[key], int) or isinstance(full[key], bool) or \
                    not 1 <= full[key] <= 64:
                raise TopologyError(f"dcs[{i}].{key}: expected a number from 1 to 64")
        checked.append(full)
    result["dcs"] = checked
    router = result["router"]
    if router["wan_writes"] not in ("own", "all"):
        raise TopologyError('router.wan_writes: expected "own" or "all"')
    prefix = router["route_prefix"]
    try:
        usable = isinstance(prefix, str) and "{dc}" in prefix and prefix.format(dc="x")
    except (KeyError, IndexError, ValueError):  # other {fields}, or a stray brace
        usable = False
    if not usable:
        raise TopologyError('router.route_prefix: text with {dc} and no other braces, e.g. '
                            '"/{dc}/mw/"')
    for key in ("server_timeout_ms", "timeouts_until_tko", "probe_timeout_initial_ms",
                "probe_timeout_max_ms", "failover_exptime"):
        if not isinstance(router[key], int) or router[key] < 1:
            raise TopologyError(f"router.{key}: expected a positive whole number")
    if not isinstance(result["server"]["memory_mb"], int) or result["server"]["memory_mb"] < 1:
        raise TopologyError("server.memory_mb: expected a positive whole number")
    for section in ("server", "router"):
        args = result[section]["args"]
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise TopologyError(f'{section}.args: expected a list of strings, e.g. ["-v"]')
    return result


def _merge(into: dict, data: dict, path: str) -> None:
    for key, value in data.items():
        where = f"{path}{key}"
        if key not in into:
            raise TopologyError(f"unknown topology key {where!r}; known: "
                                + ", ".join(f"{path}{k}" for k in into))
        if isinstance(into[key], dict):
            if not isinstance(value, dict):
                raise TopologyError(f"{where}: expected an object")
            _merge(into[key], value, where + ".")
        else:
            into[key] = value


def _is_port(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535


# --- from a topology to a plan


def plan(topology=None, base_port: int | None = None) -> Plan:
    """Nodes, links and ports of ``topology`` (as ``load_topology`` takes it). ``base_port``
    (None: the topology's) 0 picks free ports."""
    topology = load_topology(topology)
    if base_port is not None:
        if not _is_port(base_port):
            raise TopologyError("base port: expected 0 (free ports) or 1..65535")
        topology["base_port"] = base_port
    host = topology["host"]
    caches = sum(dc["servers"] + dc["gutters"] for dc in topology["dcs"])
    needed = sum(dc["servers"] + dc["gutters"] + dc["routers"] + 1 for dc in topology["dcs"]) \
        + caches * len(topology["dcs"])  # the nodes, then a link per cache and client DC
    if needed > 65535:  # counted before anything is built: a huge file costs no memory
        raise TopologyError(f"this topology needs {needed} ports (nodes and fault-proxy "
                            "links); a host has 65535: use fewer DCs or nodes")
    result = Plan(topology, host)
    wanted: list[tuple[str, str, str, int]] = []  # (name, kind, dc, index); links below
    for dc in topology["dcs"]:
        for kind, count, stem in (("server", dc["servers"], "mc"),
                                  ("gutter", dc["gutters"], "gutter")):
            wanted += [(f"{dc['name']}-{stem}{i}", kind, dc["name"], i)
                       for i in range(1, count + 1)]
    for dc in topology["dcs"]:
        wanted += [(f"{dc['name']}-router{i}", "router", dc["name"], i)
                   for i in range(1, dc["routers"] + 1)]
    link_specs = []
    for dc in topology["dcs"]:
        wanted.append((f"{dc['name']}-proxy", "proxy", dc["name"], 1))
        for name, kind, node_dc, _ in list(wanted):
            if kind in ("server", "gutter") and node_dc == dc["name"]:
                for client in topology["dcs"]:
                    link_specs.append((f"{name}/{client['name']}", name, node_dc,
                                       client["name"], f"{dc['name']}-proxy"))
    ports = allocate_ports(host, topology["base_port"], needed)
    # Ports in the documented order: caches, routers, then per proxy: control, links.
    it = iter(ports)
    for name, kind, dc, index in wanted:
        if kind != "proxy":
            result.nodes.append(Node(name, kind, dc, next(it), index))
    for name, kind, dc, index in wanted:
        if kind == "proxy":
            result.nodes.append(Node(name, kind, dc, next(it), index))
            for link_name, server, server_dc, client_dc, proxy in link_specs:
                if proxy == name:
                    result.links.append(Link(link_name, server, server_dc, client_dc, proxy,
                                             next(it)))
    return result


def allocate_ports(host: str, base: int, count: int) -> list[int]:
    if base:
        if base + count - 1 > 65535:
            raise TopologyError(f"base port {base} leaves no room for {count} ports; "
                                f"use at most {65536 - count}")
        return list(range(base, base + count))
    sockets = []
    try:  # held open together so no port is handed out twice
        for _ in range(count):
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    except OSError as exc:  # an unknown host, or out of file descriptors
        raise TopologyError(f"cannot take {count} free ports on {host} ({exc}); check "
                            "the topology's host, or use fewer nodes") from None
    finally:
        for sock in sockets:
            sock.close()


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_ports_free(lab_plan: Plan) -> None:
    """PortInUse naming the first port something already listens on."""
    owners = {node.port: node.name for node in lab_plan.nodes}
    owners.update({link.port: f"link {link.name}" for link in lab_plan.links})
    for port, owner in owners.items():
        sock = socket.socket(_family(lab_plan.host), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((lab_plan.host, port))
        except OSError as exc:
            first, last = min(owners), max(owners)
            raise PortInUse(
                f"port {port} (for {owner}) is taken ({exc.strerror}); the lab needs ports "
                f"{first}-{last}. Stop what uses it (another lab? `pymc lab down`), or pick "
                f"other ports with --base-port N (or --base-port 0 for any free ports)"
            ) from None
        finally:
            sock.close()


def write_node_configs(lab_plan: Plan, lab_dir: Path) -> list[Path]:
    """The mcrouter config of every DC and the links file of every proxy in
    ``lab_dir/configs``; their paths. (The Compose project's plan writes its own through
    the same methods.)"""
    written = []
    (Path(lab_dir) / "configs").mkdir(parents=True, exist_ok=True)
    for dc in lab_plan.dcs:
        path = config_path(lab_dir, dc)
        _write_json(path, lab_plan.mcrouter_config(dc))
        written.append(path)
    for node in lab_plan.nodes_of("proxy"):
        path = links_path(lab_dir, node.name)
        _write_json(path, lab_plan.proxy_links(node.name))
        written.append(path)
    return written


def write_configs(lab_plan: Plan, lab_dir: Path) -> list[Path]:
    """``write_node_configs`` and the topology (``topology.json``); their paths."""
    written = write_node_configs(lab_plan, lab_dir)
    topology_file = Path(lab_dir) / "topology.json"
    _write_json(topology_file, lab_plan.topology)
    written.append(topology_file)
    return written


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a router watching the file never reads half of it
