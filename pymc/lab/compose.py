"""The lab's topology as a Docker Compose project: one container per node, one network per DC
and a ``wan`` network between the DCs, generated from the same topology file as ``pymc lab``.

::

    pymc lab compose generate [--topology FILE] [--out DIR] [--subnet CIDR] [--host-port-base N]

writes into DIR (default ``compose/``):

- ``docker-compose.yml``: the Compose file (Compose spec, no ``version:``; works with
  ``docker compose`` v2 and Debian's ``docker-compose`` 1.29);
- ``configs/``: each DC's mcrouter config, each fault proxy's links and ``compose.json`` (the
  topology and the addressing below, read back by ``pymc.lab.containers``);
- ``.env``: ``COMPOSE_PROJECT_NAME`` (default ``pymc``).

Networks (from ``--subnet``, default 172.30.0.0/16, cut into /24s): ``wan`` is the first /24,
``dc1``, ``dc2``, ... the next ones, in the topology's DC order. Every container has a fixed
address, so the mcrouter configs can name servers by IP as mcrouter wants:

- on ``dc<i>``: the DC's main shards, gutters, routers and fault proxy, from .10 upwards;
- on ``wan``: every DC's routers and fault proxy, from .10 upwards.

As in the lab, routers never talk to a server directly: every pool entry is a link on the
server's DC fault proxy (``pymc.lab.fault_proxy``), which forwards to the server. A router
reaches its own DC's proxy on the DC network and the other DC's proxy on ``wan``, so
disconnecting a DC's routers and proxy from ``wan`` is a real partition, and WAN latency is a
``slow`` on the proxies' WAN links.

Inside the containers servers listen on 11211, routers on 4442 (Wikimedia's mcrouter port),
proxies take commands on 7000 and serve links from 12001; servers serve Prometheus metrics on
9150 and routers on 9442 (memcached_exporter's and the mcrouter exporter's ports). Everything
is published on 127.0.0.1 only, from ``--host-port-base`` (default 11600): first each node's
own port (servers and gutters of each DC, routers, proxies), then the metrics ports (servers,
gutters, routers); 0 lets Docker pick free ports (``docker port`` / ``pymc lab status`` show
them).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import topology as topo

#: The source tree this pymc runs from: the Docker build context (a checkout's root).
SOURCE_ROOT = Path(__file__).resolve().parents[2]
SERVER_PORT = 11211
ROUTER_PORT = 4442
CONTROL_PORT = 7000
METRICS_PORT = {"server": 9150, "gutter": 9150, "router": 9442}  # the exporters' ports
FIRST_LINK_PORT = 12001
DEFAULT_SUBNET = "172.30.0.0/16"
DEFAULT_HOST_PORT_BASE = 11600
DEFAULT_PROJECT = "pymc"
IMAGE = "${PYMC_IMAGE:-pymc:local}"
BASE_IMAGE = "${PYMC_BASE_IMAGE:-python:3.12-slim}"
CONFIG_DIR = "/etc/pymc"  # where configs/ is mounted in every container
PLAN_FILE = "compose.json"
FIRST_HOST = 10  # .1 is the bridge's gateway
INTERNAL_PORT = {"server": SERVER_PORT, "gutter": SERVER_PORT, "router": ROUTER_PORT,
                 "proxy": CONTROL_PORT}
HEALTH = {"interval": "2s", "timeout": "2s", "retries": 15}


class ComposeError(topo.TopologyError):
    pass


@dataclass
class ContainerPlan(topo.Plan):
    """A lab plan whose nodes are containers: node ports are the ports inside them, links are
    reached at the proxy's address on the DC network or on ``wan``."""
    subnet: str = DEFAULT_SUBNET
    host_port_base: int = DEFAULT_HOST_PORT_BASE
    project: str = DEFAULT_PROJECT
    subnets: dict[str, str] = field(default_factory=dict)   # network → CIDR
    ips: dict[str, dict[str, str]] = field(default_factory=dict)  # node → network → IP
    host_ports: dict[str, int] = field(default_factory=dict)      # node → 0 = Docker picks
    metrics_host_ports: dict[str, int] = field(default_factory=dict)  # servers and routers

    def network(self, dc: str) -> str:
        return f"dc{self.dcs.index(dc) + 1}"

    def link_address(self, link: topo.Link) -> str:
        network = "wan" if link.wan else self.network(link.server_dc)
        return f"{self.ips[link.proxy][network]}:{link.port}"

    def node_ip(self, name: str) -> str:
        """The node's address on its own DC's network."""
        node = self.node(name)
        return self.ips[name][self.network(node.dc)]

    def proxy_links(self, proxy: str) -> dict:
        return {link.name: {"listen": f"0.0.0.0:{link.port}",
                            "upstream": f"{self.node_ip(link.server)}:{SERVER_PORT}"}
                for link in self.links if link.proxy == proxy}

    def command(self, node: topo.Node) -> list[str]:
        if node.is_cache:
            return ["pymc-server", "-p", str(SERVER_PORT), "-l", "0.0.0.0",
                    "--metrics-port", str(METRICS_PORT[node.kind]), *self.server_flags()]
        if node.kind == "router":
            return ["pymc-router", "-p", str(ROUTER_PORT), "--listen-addresses", "0.0.0.0",
                    "--metrics-port", str(METRICS_PORT[node.kind]),
                    *self.router_flags(node.dc, f"{CONFIG_DIR}/{node.dc}-mcrouter.json")]
        return ["python", "-m", "pymc.lab.fault_proxy",
                "--links-file", f"{CONFIG_DIR}/{node.name}-links.json",
                "--control", f"0.0.0.0:{CONTROL_PORT}"]

    def healthcheck(self, node: topo.Node) -> list[str]:
        local = f"127.0.0.1:{node.port}"
        if node.kind == "router":  # Wikimedia's check: the live config is the file's
            extra = [f"{CONFIG_DIR}/{node.dc}-mcrouter.json"]
        else:
            extra = []
        kind = "server" if node.is_cache else node.kind
        return ["CMD", "python", "-m", "pymc.lab.health", kind, local, *extra]

    def as_dict(self) -> dict:
        return {"topology": self.topology, "subnet": self.subnet,
                "host_port_base": self.host_port_base, "project": self.project}


def container_plan(topology=None, subnet: str = DEFAULT_SUBNET,
                   host_port_base: int = DEFAULT_HOST_PORT_BASE,
                   project: str = DEFAULT_PROJECT) -> ContainerPlan:
    """Nodes, links, networks, addresses and published ports of ``topology`` (None: the
    default lab) in containers."""
    base = topo.plan(topology, 1)  # sequential: nothing is bound
    cplan = ContainerPlan(base.topology, "127.0.0.1", base.nodes, base.links, subnet,
                          host_port_base, project)
    if not project.replace("-", "").replace("_", "").isalnum() or project != project.lower():
        raise ComposeError(f"project {project!r}: use lowercase letters, digits, - and _")
    try:
        network = ipaddress.ip_network(subnet)
    except ValueError:
        raise ComposeError(f"subnet {subnet!r}: expected an IPv4 network such as "
                           f"{DEFAULT_SUBNET}") from None
    if network.version != 4 or network.prefixlen > 22:
        raise ComposeError(f"subnet {subnet}: expected an IPv4 network of /22 or larger, "
                           f"cut into a /24 for wan and one per DC")
    pieces = list(network.subnets(new_prefix=24))
    names = ["wan"] + [cplan.network(dc) for dc in cplan.dcs]
    if len(pieces) < len(names):
        raise ComposeError(f"subnet {subnet} holds {len(pieces)} /24s; {len(names)} are "
                           f"needed (wan + one per DC): use a larger one")
    cplan.subnets = {name: str(piece) for name, piece in zip(names, pieces)}
    members = {name: [] for name in names}
    for node in cplan.nodes:
        members[cplan.network(node.dc)].append(node.name)
    for dc in cplan.dcs:
        members["wan"] += [n.name for n in cplan.nodes if n.dc == dc
                           and n.kind in ("router", "proxy")]
    for name, nodes in members.items():
        hosts = list(ipaddress.ip_network(cplan.subnets[name]).hosts())
        if FIRST_HOST + len(nodes) > len(hosts):
            raise ComposeError(f"network {name} needs {len(nodes)} addresses; a /24 holds "
                               f"{len(hosts) - FIRST_HOST}: use fewer nodes per DC")
        for i, node_name in enumerate(nodes):
            cplan.ips.setdefault(node_name, {})[name] = str(hosts[FIRST_HOST - 1 + i])
    for node in cplan.nodes:
        node.port = INTERNAL_PORT[node.kind]
    next_link = {}
    for link in cplan.links:
        link.port = next_link.setdefault(link.proxy, FIRST_LINK_PORT)
        next_link[link.proxy] += 1
    measured = [node for node in cplan.nodes if node.kind in METRICS_PORT]
    needed = len(cplan.nodes) + len(measured)
    if not isinstance(host_port_base, int) or host_port_base < 0:
        raise ComposeError(f"host port base {host_port_base}: expected a port, or 0 to let "
                           "Docker pick free ports")
    if host_port_base and host_port_base + needed - 1 > 65535:
        raise ComposeError(f"host port base {host_port_base} leaves no room for "
                           f"{needed} ports")
    for i, node in enumerate(cplan.nodes):
        cplan.host_ports[node.name] = host_port_base + i if host_port_base else 0
    for i, node in enumerate(measured, start=len(cplan.nodes)):
        cplan.metrics_host_ports[node.name] = host_port_base + i if host_port_base else 0
    return cplan


def load_plan(directory: str | os.PathLike) -> ContainerPlan:
    """The plan ``generate`` wrote into ``directory``."""
    path = Path(directory) / "configs" / PLAN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ComposeError(f"no {path}: generate the Compose project first with "
                           f"`pymc lab compose generate --out {directory}`") from None
    except (OSError, ValueError) as exc:
        raise ComposeError(f"cannot read {path}: {exc}") from None
    try:
        return container_plan(data["topology"], data["subnet"], data["host_port_base"],
                              data["project"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ComposeError(f"{path} is not a generated project's plan ({type(exc).__name__}: "
                           f"{exc}); generate it again with `pymc lab compose generate --out "
                           f"{directory}`") from None


# --- the Compose file


class Anchor:
    """A YAML anchor (``&name``) on a mapping; ``Alias(name)`` as a ``<<`` value merges it."""

    def __init__(self, name: str, value: dict) -> None:
        self.name, self.value = name, value


class Alias:
    def __init__(self, name: str) -> None:
        self.name = name


def compose_file(cplan: ContainerPlan, build_context: str) -> dict:
    common = {
        "image": IMAGE,
        "build": {"context": build_context, "dockerfile": "compose/Dockerfile",
                  "args": {"BASE_IMAGE": BASE_IMAGE}},
        "init": True,  # signals reach pymc; zombies are reaped
        "restart": "no",
        "volumes": [f"./configs:{CONFIG_DIR}:ro"],
    }
    services = {}
    for node in cplan.nodes:
        networks = {name: {"ipv4_address": ip} for name, ip in cplan.ips[node.name].items()}
        host_port = cplan.host_ports[node.name]
        service = {
            "<<": Alias("pymc"),
            "hostname": node.name,
            "command": cplan.command(node),
            "networks": networks,
            "ports": [f"127.0.0.1:{host_port or ''}:{node.port}"] + (
                [f"127.0.0.1:{cplan.metrics_host_ports[node.name] or ''}:"
                 f"{METRICS_PORT[node.kind]}"] if node.kind in METRICS_PORT else []),
            "healthcheck": {"test": cplan.healthcheck(node), **HEALTH},
            "labels": {"org.pymc.node": node.name, "org.pymc.kind": node.kind,
                       "org.pymc.dc": node.dc},
        }
        if node.kind == "router":
            service["depends_on"] = [f"{node.dc}-proxy"]
        services[node.name] = service
    networks = {name: {"ipam": {"config": [{"subnet": cidr}]}}
                for name, cidr in cplan.subnets.items()}
    return {"x-pymc": Anchor("pymc", common), "services": services, "networks": networks}


def to_yaml(value, indent: int = 0) -> str:
    """YAML for the plain data of a Compose file (dicts, lists, strings, numbers, bools,
    Anchor, Alias); strings are double-quoted JSON strings, which YAML reads as they are."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, Anchor):
                lines.append(f"{pad}{key}: &{item.name}")
                lines.append(to_yaml(item.value, indent + 2))
            elif _inline(item):
                lines.append(f"{pad}{key}: {_scalar(item)}")
            else:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2))
    elif isinstance(value, list):
        for item in value:
            if _inline(item):
                lines.append(f"{pad}- {_scalar(item)}")
            else:  # "- key: value" with the item's other keys under the first
                block = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {block[indent + 2:]}")
    else:
        lines.append(pad + _scalar(value))
    return "\n".join(lines)


def _inline(value) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, (str, int)) for item in value)
    return not isinstance(value, dict)


def _scalar(value) -> str:
    if isinstance(value, Alias):
        return f"*{value.name}"
    if isinstance(value, list):  # a flow sequence: one line per command, as people write
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def generate(cplan: ContainerPlan, out_dir: str | os.PathLike,
             build_context: str | None = None) -> list[Path]:
    """Write the Compose project (see the module docstring); the files written.
    ``build_context`` defaults to this source tree, relative to ``out_dir`` when inside it."""
    out = Path(out_dir)
    if build_context is None:
        try:
            build_context = os.path.relpath(SOURCE_ROOT, out.resolve())
        except ValueError:
            build_context = str(SOURCE_ROOT)
    written = topo.write_node_configs(cplan, out)
    plan_path = out / "configs" / PLAN_FILE
    topo._write_json(plan_path, cplan.as_dict())
    written.append(plan_path)
    compose_path = out / "docker-compose.yml"
    header = ("# Generated by `pymc lab compose generate` from the lab topology in "
              f"configs/{PLAN_FILE};\n# regenerate instead of editing. See README.md here.\n")
    compose_path.write_text(header + to_yaml(compose_file(cplan, build_context)) + "\n",
                            encoding="utf-8")
    env_path = out / ".env"
    env_path.write_text(f"COMPOSE_PROJECT_NAME={cplan.project}\n", encoding="utf-8")
    written += [compose_path, env_path]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pymc lab compose generate",
                                     description="Write the lab topology as a Compose project.")
    parser.add_argument("--topology", metavar="FILE", help="a lab topology JSON file "
                        "(default: the default lab; `pydoc pymc.lab.topology`)")
    parser.add_argument("--out", default="compose", help="directory (default ./compose)")
    parser.add_argument("--subnet", default=DEFAULT_SUBNET,
                        help=f"IPv4 range cut into /24 networks (default {DEFAULT_SUBNET})")
    parser.add_argument("--host-port-base", type=int, default=DEFAULT_HOST_PORT_BASE,
                        metavar="N", help="first published 127.0.0.1 port (default "
                        f"{DEFAULT_HOST_PORT_BASE}); 0: Docker picks free ports")
    parser.add_argument("--project", default=DEFAULT_PROJECT,
                        help=f"Compose project name written to .env (default "
                        f"{DEFAULT_PROJECT})")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cplan = container_plan(args.topology, args.subnet, args.host_port_base, args.project)
        for path in generate(cplan, args.out):
            print(f"wrote {path}")
    except (topo.TopologyError, OSError) as exc:  # OSError: an --out that cannot be written
        print(f"pymc lab compose generate: {exc}", file=sys.stderr)
        return 1
    return 0
