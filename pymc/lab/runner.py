"""Start, stop, inspect and break a lab: real pymc-server, pymc-router and fault-proxy
processes on loopback, described by a topology (``pymc.lab.topology``).

::

    lab = Lab.create(None, "/tmp/lab", base_port=0)   # None: the default two-DC topology
    lab.up(progress=print)
    lab.router_addresses("eqiad")                      # ["127.0.0.1:11512", ...]
    lab.fail("eqiad-mc1", "kill"); lab.heal()
    lab.down()

    Lab.attach("/tmp/lab")                             # from another process, e.g. the CLI

The lab directory holds ``state.json`` (nodes with name, kind, dc, port, pid, argv, ...; the
faults in force), ``topology.json``, ``configs/`` (each DC's mcrouter config and each fault
proxy's links) and ``logs/<node>.log``. Processes run detached (their own session), so a lab
outlives the command that started it; ``down`` stops each by PID after checking the PID still
runs the command the lab started (a recycled PID is left alone).

Faults (``fail``; ``heal`` undoes them; ``heal()`` undoes all, partitions included; the
table is in ``pymc.lab.faults``):

- ``kill``: SIGKILL the process; for a server its proxy links also refuse connections, as a
  dead memcached's port would. ``heal`` starts it again on the same port (a server comes back
  empty).
- ``hang``: a server or gutter: its links stop forwarding (connections are accepted, nothing
  reaches the server or comes back: requests time out, routers soft-TKO it). A router or a
  proxy: SIGSTOP. ``heal``: links forward again (what was queued is delivered) / SIGCONT.
- ``freeze``: SIGSTOP any process (``heal``: SIGCONT); a frozen server also stops answering
  direct clients and ``status``.
- ``slow MS``: servers and gutters: MS ms added each way on every link to the node.
- ``loss PCT``: servers and gutters: PCT % of new connections and of data chunks reset their
  connection (from user space TCP cannot lose a single packet).
- ``partition(a, b)``: the WAN links between DCs a and b refuse connections (routers of a
  cannot reach servers of b and vice versa); local links are untouched.

Faults live in ``state.json``, so they can be set from any process and survive it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import psutil

from ..protocol.stats import parse_stats
from . import faults as faults_mod
from . import topology as topo
from .compose import PLAN_FILE
from .fault_proxy import child_env, control_many
from .health import check_proxy, check_server
from .wire import ask

DEFAULT_DIR = ".pymc-lab"
STATE_FILE = "state.json"
READY_TIMEOUT = 20.0
STOP_GRACE = 3.0

Progress = Callable[[str], None]


class LabError(RuntimeError):
    """Something the user can act on; the message says what to do next."""


class NoLab(LabError):
    pass


def _quiet(_: str) -> None:
    pass


def is_compose_project(lab_dir: str | os.PathLike) -> bool:
    """Whether ``lab_dir`` holds a project ``pymc lab compose generate`` wrote (its nodes are
    containers: ``pymc.lab.containers``) rather than a process lab."""
    return (Path(lab_dir) / "configs" / PLAN_FILE).exists()


class Lab:
    # How the faults act on this kind of lab (pymc.lab.containers.ContainerLab differs):
    HANG_STOPS_CACHES = False  # a hung server: its links hang (True: the process is stopped)
    PARTITION_BY_LINKS = True  # a partition: the WAN links refuse (False: done elsewhere)
    STOPPED = "froze {node} (SIGSTOP)"
    KILLED = "killed {node} (SIGKILL)"

    def __init__(self, lab_dir: Path, plan: topo.Plan, state: dict) -> None:
        self.dir = Path(lab_dir).resolve()
        self.plan = plan
        self.state = state
        self._children: dict[int, subprocess.Popen] = {}  # pid → Popen, for reaping

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    # --- construction

    @classmethod
    def create(cls, topology=None, lab_dir: str | os.PathLike = DEFAULT_DIR,
               base_port: int | None = None) -> "Lab":
        """A lab not yet started: ``topology`` is None (the default), a dict or a JSON file
        path; ``base_port`` overrides the topology's (0: any free ports). Refuses a directory
        whose lab is still running."""
        lab_dir = Path(lab_dir)
        if is_compose_project(lab_dir):
            raise LabError(f"{lab_dir} holds a Compose project: start it with `pymc lab "
                           f"compose up --dir {lab_dir}`")
        if (lab_dir / STATE_FILE).exists():
            try:
                old = cls.attach(lab_dir)
            except LabError:
                old = None
            running = old.running_nodes() if old is not None else []
            if running:
                raise LabError(f"a lab is already running in {lab_dir} "
                               f"({len(running)} processes); stop it with "
                               f"`pymc lab down --dir {lab_dir}` or use another --dir")
        plan = topo.plan(topology, base_port)
        state = {"version": 1, "created": time.time(), "topology": plan.topology,
                 "nodes": [dict(name=n.name, kind=n.kind, dc=n.dc, port=n.port,
                                address=plan.address(n.port), pid=None, create_time=None,
                                argv=[], log="") for n in plan.nodes],
                 "links": [dict(name=link.name, server=link.server, client_dc=link.client_dc,
                                proxy=link.proxy, port=link.port,
                                address=plan.address(link.port), wan=link.wan)
                           for link in plan.links],
                 "faults": {}, "partitions": [], "wan_latency_ms": 0}
        return cls(lab_dir, plan, state)

    @classmethod
    def attach(cls, lab_dir: str | os.PathLike = DEFAULT_DIR) -> "Lab":
        """The lab whose state ``up`` wrote in ``lab_dir`` (running or not); for a directory
        holding a generated Compose project, its containers (``ContainerLab``)."""
        lab_dir = Path(lab_dir)
        if cls is Lab and is_compose_project(lab_dir):
            from .containers import ContainerLab
            return ContainerLab.attach(lab_dir)
        path = lab_dir / STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NoLab(f"no lab in {lab_dir}; start one with `pymc lab up"
                        f"{'' if str(lab_dir) == DEFAULT_DIR else f' --dir {lab_dir}'}`") \
                from None
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read {path} ({exc}); remove {lab_dir} if no lab "
                           "processes are left (check with `ps`)") from None
        try:
            plan = topo.plan(state["topology"], 1)  # sequential, nothing bound: replaced below
            # The ports are the ones recorded (free ports are not reproducible).
            ports = {n["name"]: n["port"] for n in state["nodes"]}
            for node in plan.nodes:
                node.port = ports[node.name]
            link_ports = {link["name"]: link["port"] for link in state["links"]}
            for link in plan.links:
                link.port = link_ports[link.name]
        except (KeyError, TypeError, topo.TopologyError) as exc:
            raise LabError(f"{path} is not a lab's state ({type(exc).__name__}: {exc}); "
                           f"remove {lab_dir} if no lab processes are left (check with `ps`)"
                           ) from None
        return cls(lab_dir, plan, state)

    # --- addresses

    def node(self, name: str) -> dict:
        for node in self.state["nodes"]:
            if node["name"] == name:
                return node
        raise LabError(f"no node {name!r} in this lab; nodes: "
                       + ", ".join(n["name"] for n in self.state["nodes"]))

    @property
    def nodes(self) -> list[dict]:
        return self.state["nodes"]

    @property
    def dcs(self) -> list[str]:
        return self.plan.dcs

    def _check_dc(self, dc: str) -> None:
        if dc not in self.dcs:
            raise LabError(f"no DC {dc!r} in this lab; DCs: {', '.join(self.dcs)}")

    def node_names(self, kind: str | None = None, dc: str | None = None) -> list[str]:
        return [n["name"] for n in self.nodes
                if (kind is None or n["kind"] == kind) and (dc is None or n["dc"] == dc)]

    def router_addresses(self, dc: str) -> list[str]:
        self._check_dc(dc)
        return [n["address"] for n in self.nodes if n["kind"] == "router" and n["dc"] == dc]

    def address(self, name: str) -> str:
        """A node's own address (for a proxy its control port)."""
        return self.node(name)["address"]

    def server_address(self, name: str) -> str:
        """A server's or gutter's own address, bypassing the fault proxies."""
        node = self.node(name)
        if node["kind"] not in ("server", "gutter"):
            raise LabError(f"{name} is a {node['kind']}, not a server")
        return node["address"]

    def link_owner(self, address: str) -> tuple[str, str] | None:
        """(server, link name) of a proxy link address as routers see it."""
        for link in self.state["links"]:
            if link["address"] == address:
                return link["server"], link["name"]
        return None

    def shard(self, key: str | bytes, dc: str, pool: str = "server") -> str:
        """The node of ``dc``'s main (``server``) or gutter (``gutter``) pool that mcrouter's
        Ch3 hash sends ``key`` to (the routing key: no /dc/cluster/ prefix, up to |#|)."""
        from ..router.hashing import ch3
        self._check_dc(dc)
        raw = key.encode() if isinstance(key, str) else key
        if raw.startswith(b"/") and raw.count(b"/") >= 3:
            raw = raw.split(b"/", 3)[3]
        raw = raw.split(b"|#|", 1)[0]
        members = self.node_names(pool, dc)
        return members[ch3(raw, len(members))]

    # --- processes

    def alive(self, node: dict) -> bool:
        """The node's recorded PID runs the recorded command (not a zombie)."""
        pid = node.get("pid")
        if not pid:
            return False
        child = self._children.get(pid)
        if child is not None:
            # Our own child: Popen knows. (Its cmdline is still ours between fork and exec,
            # so the check below would call a process that is just starting dead.)
            return child.poll() is None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            if node.get("create_time") and abs(proc.create_time() - node["create_time"]) > 1:
                return False
            return proc.cmdline() == node["argv"]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def running_nodes(self) -> list[str]:
        self.refresh()
        return [n["name"] for n in self.nodes if self.alive(n)]

    def _spawn(self, node: dict) -> None:
        plan_node = self.plan.node(node["name"])
        argv = self.plan.argv(plan_node, self.dir)
        log_path = self.dir / "logs" / f"{node['name']}.log"
        env = child_env()
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} "
                      f"{' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    cwd=self.dir, env=env, start_new_session=True,
                                    close_fds=True)
        self._children[proc.pid] = proc
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = None
        node.update(pid=proc.pid, create_time=create_time, argv=argv, log=str(log_path))

    def _ready(self, node: dict) -> bool:
        check = check_proxy if node["kind"] == "proxy" else check_server
        try:
            return not check(node["address"], timeout=0.5)
        except OSError:
            return False

    def process_state(self, node: dict) -> tuple[str, float | None]:
        """("running" | "stopped" (SIGSTOP) | "dead", RSS in MB or None) of a node."""
        if self.alive(node):
            try:
                proc = psutil.Process(node["pid"])
                stopped = proc.status() == psutil.STATUS_STOPPED
                return ("stopped" if stopped else "running",
                        round(proc.memory_info().rss / 2**20, 1))
            except psutil.Error:
                pass
        return "dead", None

    def _log_tail(self, node: dict, lines: int = 8) -> str:
        try:
            text = Path(node["log"]).read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text[-lines:])

    def _wait_ready(self, names: list[str], progress: Progress, started: float,
                    timeout: float = READY_TIMEOUT) -> None:
        pending = list(names)
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=16) as pool:
            while pending:
                nodes = [self.node(name) for name in pending]
                for node in nodes:
                    if not self.alive(node):
                        raise LabError(f"{node['name']} exited while starting; the end of its "
                                       f"log {node['log']}:\n{self._log_tail(node)}")
                answers = list(pool.map(self._ready, nodes))
                for node, ready in zip(nodes, answers):
                    if ready:
                        pending.remove(node["name"])
                        progress(f"  {node['name']:<16} {node['kind']:<7} "
                                 f"{node['address']:<16} ready "
                                 f"({time.monotonic() - started:.1f} s)")
                if pending:
                    if time.monotonic() > deadline:
                        raise LabError(f"not ready after {timeout:g} s: {', '.join(pending)}; "
                                       f"see their logs in {self.dir / 'logs'}")
                    time.sleep(0.05)

    # --- up and down

    def up(self, progress: Progress | None = None, timeout: float = READY_TIMEOUT) -> None:
        """Write the configs, start every process at once, wait until each answers.
        On failure everything started is stopped again and LabError says why."""
        progress = progress or _quiet
        started = time.monotonic()
        topo.check_ports_free(self.plan)
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        topo.write_configs(self.plan, self.dir)
        self._save()
        try:
            counts = {kind: len(self.node_names(kind)) for kind in topo.KINDS}
            progress(f"starting {len(self.nodes)} processes: {counts['server']} servers, "
                     f"{counts['gutter']} gutters, {counts['router']} routers, "
                     f"{counts['proxy']} fault proxies ({len(self.state['links'])} links)")
            # Routers connect to servers lazily, so the order does not matter.
            for node in self.nodes:
                self._spawn(node)
                self._save()  # a failed up can always be cleaned up by `down`
            self._wait_ready([n["name"] for n in self.nodes], progress, started, timeout)
            self.state["up_seconds"] = round(time.monotonic() - started, 2)
            self._save()
        except BaseException:
            self.down()
            raise
        progress(f"lab up in {time.monotonic() - started:.1f} s")

    def down(self, progress: Progress | None = None) -> list[str]:
        """Stop every process of the lab (SIGTERM, SIGKILL after 3 s); the names stopped.
        Safe on a lab that is partly up or already down."""
        progress = progress or _quiet
        self.refresh()
        targets = [n for n in self.nodes if self.alive(n)]
        for node in targets:
            self._signal(node, signal.SIGTERM)
            self._signal(node, signal.SIGCONT)  # a frozen process cannot act on SIGTERM
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and any(self.alive(n) for n in targets):
            time.sleep(0.05)
        for node in targets:
            if self.alive(node):
                progress(f"  {node['name']} did not stop on SIGTERM; SIGKILL")
                self._signal(node, signal.SIGKILL)
        for node in targets:
            self._wait_dead(node)
            progress(f"  stopped {node['name']} (pid {node['pid']})")
        for node in self.nodes:
            node.update(pid=None, create_time=None)
        self.state["faults"], self.state["partitions"] = {}, []
        if self.state_path.exists():
            self._save()
        return [n["name"] for n in targets]

    def _signal(self, node: dict, signum: int) -> None:
        if self.alive(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node["pid"], signum)

    def _wait_dead(self, node: dict, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.alive(node) and time.monotonic() < deadline:
            time.sleep(0.02)
        child = self._children.pop(node.get("pid") or 0, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1)

    # --- state on disk

    def refresh(self) -> None:
        """Re-read nodes (PIDs), faults and partitions from state.json: another process (the
        CLI, a scenario) may have failed, healed or restarted something."""
        with contextlib.suppress(OSError, ValueError):
            disk = json.loads(self.state_path.read_text(encoding="utf-8"))
            self.state["nodes"] = disk["nodes"]
            self.state["faults"] = disk.get("faults", {})
            self.state["partitions"] = disk.get("partitions", [])
            self.state["wan_latency_ms"] = disk.get("wan_latency_ms", 0)

    def _save(self) -> None:
        path = self.state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[dict]:
        """Read-modify-write of state.json under a lock: faults may come from several
        processes (a scenario and a user's CLI)."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.state_path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.refresh()
                try:
                    yield self.state
                finally:
                    # also when a step failed: processes it started must stay on record so
                    # that `down` finds them
                    self._save()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _require_up(self) -> None:
        if not any(self.alive(n) for n in self.nodes):
            raise NoLab(f"the lab in {self.dir} is not running; start it with `pymc lab up"
                        f" --dir {self.dir}`")

    # --- faults

    @property
    def faults(self) -> dict:
        """node → {"kind": ..., "arg": ...} for the faults in force."""
        self.refresh()
        return dict(self.state["faults"])

    @property
    def partitions(self) -> list[list[str]]:
        self.refresh()
        return [list(p) for p in self.state["partitions"]]

    def fail(self, node: str, kind: str, arg: float | None = None) -> str:
        """Inject a fault (see the module docstring); a sentence saying what was done."""
        self._require_up()
        target = self.node(node)
        cache = target["kind"] in ("server", "gutter")
        if kind in ("slow", "loss") and not cache:
            raise LabError(f"{kind} applies to servers and gutters (it is set on their "
                           f"proxy links); {node} is a {target['kind']}")
        if arg is not None:
            arg = float(arg)
        try:
            faults_mod.check(kind, arg)
        except faults_mod.FaultError as exc:
            raise LabError(str(exc)) from None
        with self._transaction() as state:
            target = self.node(node)
            previous = state["faults"].get(node)
            if previous and previous["kind"] != kind and self._undo(target, previous):
                self._wait_ready([node], _quiet, time.monotonic())
            if kind == "kill":
                if self.alive(target):
                    self._signal(target, signal.SIGKILL)
                    self._wait_dead(target)
                what = self.KILLED.format(node=node)
            elif self._stops(kind, target):
                self._signal(target, signal.SIGSTOP)
                what = self.STOPPED.format(node=node)
            elif kind == "hang":
                what = f"{node} hangs: its proxy links accept but forward nothing"
            elif kind == "slow":
                what = f"{node} is {arg:g} ms slower each way on every link"
            else:
                what = f"{node} loses {arg:g} % of connections"
            state["faults"][node] = {"kind": kind, "arg": arg}
            self._sync_links()
        return what

    def partition(self, dc_a: str, dc_b: str) -> str:
        """Cut the WAN links between two DCs (both directions)."""
        self._require_up()
        self._check_dc(dc_a)
        self._check_dc(dc_b)
        if dc_a == dc_b:
            raise LabError("a partition is between two different DCs")
        pair = sorted((dc_a, dc_b))
        with self._transaction() as state:
            if pair not in state["partitions"]:
                state["partitions"].append(pair)
            self._sync_links()
        return f"partitioned {pair[0]} from {pair[1]}: {self._partition_effect(pair)}"

    def _partition_effect(self, pair: list[str]) -> str:
        return "WAN links between them refuse"

    def wan_latency(self, ms: float) -> str:
        """Add ``ms`` each way on every WAN link, on top of node faults (0: none)."""
        self._require_up()
        try:
            faults_mod.check("slow", ms)
        except faults_mod.FaultError as exc:
            raise LabError(f"WAN latency: {exc}") from None
        with self._transaction() as state:
            state["wan_latency_ms"] = ms
            self._sync_links()
        return f"WAN links {f'delayed {ms:g} ms each way' if ms else 'no longer delayed'}"

    def heal(self, node: str | None = None) -> list[str]:
        """Undo the faults of ``node`` (a node name; a DC name heals that DC's partitions);
        None: every fault and partition. Killed processes are started again. What was done."""
        self._require_up()
        done = []
        with self._transaction() as state:
            if node is None:
                names = list(state["faults"])
                if state["partitions"]:
                    done += [f"healed partition {a}/{b}" for a, b in state["partitions"]]
                    state["partitions"] = []
            elif node in self.dcs:
                names = []
                kept = [p for p in state["partitions"] if node not in p]
                done += [f"healed partition {a}/{b}" for a, b in state["partitions"]
                         if node in (a, b)]
                state["partitions"] = kept
            else:
                self.node(node)
                names = [node] if node in state["faults"] else []
            if node is None and state.get("wan_latency_ms"):
                state["wan_latency_ms"] = 0
                done.append("WAN links no longer delayed")
            restarted = []
            if node is None:  # also whatever died on its own (a crash, a kill -9 by hand)
                for other in self.nodes:
                    if other["name"] not in state["faults"] and not self.alive(other):
                        self._spawn(other)
                        restarted.append(other["name"])
                        done.append(f"restarted {other['name']} (it was not running)")
            for name in names:
                fault = state["faults"].pop(name)
                target = self.node(name)
                if self._undo(target, fault):
                    restarted.append(name)
                done.append(f"healed {name} ({faults_mod.describe(fault)})")
            if restarted:
                self._wait_ready(restarted, _quiet, time.monotonic())
            self._sync_links()
            if node is not None and not done:
                done.append(f"nothing to heal on {node}")
        return done

    def _undo(self, target: dict, fault: dict) -> bool:
        """Undo one fault's process side; True if the process was started again."""
        if fault["kind"] == "kill" and not self.alive(target):
            self._spawn(target)
            return True
        if self._stops(fault["kind"], target):
            self._signal(target, signal.SIGCONT)
        return False

    def _stops(self, kind: str, target: dict) -> bool:
        """Whether fault ``kind`` stops ``target``'s process (rather than its links)."""
        cache = target["kind"] in ("server", "gutter")
        return kind == "freeze" or kind == "hang" and (self.HANG_STOPS_CACHES or not cache)

    def _link_mode(self, link: dict) -> str:
        fault = self.state["faults"].get(link["server"])
        if fault and self._stops(fault["kind"], self.node(link["server"])):
            fault = None  # the process is stopped; its links are fine
        return faults_mod.link_mode(self.node(link["server"])["dc"], link["client_dc"], fault,
                                    self.state["partitions"] if self.PARTITION_BY_LINKS else [],
                                    self.state.get("wan_latency_ms") or 0)

    def _sync_links(self) -> None:
        """Set every link's mode from the faults and partitions in force."""
        for proxy in self.node_names("proxy"):
            node = self.node(proxy)
            fault = self.state["faults"].get(proxy)
            if not self.alive(node) or fault and self._stops(fault["kind"], node):
                continue
            links = [link for link in self.state["links"] if link["proxy"] == proxy]
            replies = control_many(node["address"],
                                   [f"@{link['name']} {self._link_mode(link)}"
                                    for link in links])
            bad = [f"{link['name']}: {reply}" for link, reply in zip(links, replies)
                   if reply != "OK"]
            if bad:
                raise LabError(f"fault proxy {proxy} refused: " + "; ".join(bad))

    # --- looking inside

    def router_stats(self, router_name: str, group: str = "", timeout: float = 2.0) -> dict:
        """``stats [group]`` of a router (or a server) as name → value (ints where the value
        is a whole number, else the text after the name)."""
        node = self.node(router_name)
        return stats(node["address"], group, timeout)

    def suspect_servers(self, router_name: str, timeout: float = 2.0) -> dict[str, str]:
        """What a router's ``stats suspect_servers`` says, by node name (links of the same
        server merged): {"eqiad-mc1": "status:tko num_failures:3"}."""
        result = {}
        for address, text in self.router_stats(router_name, "suspect_servers",
                                               timeout).items():
            owner = self.link_owner(address)
            result[owner[0] if owner else address] = str(text)
        return result

    def status(self) -> list[dict]:
        """One dict per node; see ``pymc.lab.status.collect``."""
        from .status import collect
        self.refresh()
        return collect(self)


def _stats_done(data: bytes) -> bool:
    """The whole reply is in: up to END, or one error line."""
    errors = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")
    return data.endswith(b"END\r\n") or data.startswith(errors) and data.endswith(b"\r\n")


def stats(address: str, group: str = "", timeout: float = 2.0) -> dict:
    data = ask(address, f"stats {group}".strip().encode() + b"\r\n", _stats_done, timeout)
    if not _stats_done(data):
        raise ConnectionError(f"{address} closed the connection")
    if not data.endswith(b"END\r\n"):
        raise LabError(f"stats {group} on {address}: {data.decode(errors='replace').strip()}")
    return parse_stats(data)
