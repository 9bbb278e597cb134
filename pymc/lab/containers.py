"""The lab in containers: a ``Lab`` whose nodes are the containers of a Compose project that
``pymc.lab.compose`` generated, so ``status``, ``fail``, ``heal``, ``partition`` and every
scenario work on it unchanged.

::

    pymc lab compose up [--dir compose]          # generate if needed, build if needed, up
    pymc lab status --dir compose                # any lab command, with --dir of the project
    pymc lab fail eqiad-mc2 kill --dir compose   # docker kill
    pymc lab scenario run shard-down --dir compose
    pymc lab compose down [--dir compose]

How the faults act here (``pymc.lab.faults`` has the table for the process lab):

- ``kill``: ``docker kill``; ``heal`` starts the same container (same addresses).
- ``hang``, ``freeze``: ``docker pause`` (the cgroup freezer: the server holds connections and
  answers nothing); ``heal``: ``docker unpause``.
- ``slow MS``, ``loss PCT``: on the node's fault-proxy links, as in the process lab.
- ``partition a b``: both DCs' routers and fault proxies are disconnected from the ``wan``
  network (``docker network disconnect``); ``heal`` connects them again with their addresses.
- ``wan_latency(ms)``: ``slow MS`` on every WAN link of every proxy (``pymc lab compose
  wan-latency MS``).

Everything is reached through the 127.0.0.1 ports Docker publishes, or ``docker exec``.
State (faults in force) is kept in ``<dir>/state/state.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil

from . import compose
from .runner import STATE_FILE, Lab, LabError, NoLab, Progress, _quiet

READY_TIMEOUT = 90.0
INSPECT_TTL = 0.3  # seconds an inspection of the project's containers is reused


class DockerError(LabError):
    pass


def docker(*args: str, timeout: float = 120.0, check: bool = True) -> str:
    """``docker ARGS``' standard output; DockerError with its message when it fails."""
    if shutil.which("docker") is None:
        raise DockerError("no `docker` command: install Docker (apt-get install docker.io) "
                          "and start its engine (dockerd)")
    try:
        done = subprocess.run(["docker", *args], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DockerError(f"`docker {' '.join(args)}` took over {timeout:g} s; is dockerd "
                          "healthy?") from None
    if check and done.returncode != 0:
        raise DockerError(f"`docker {' '.join(args)}` failed: "
                          f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def compose_command() -> list[str]:
    """``docker compose`` (v2) when the plugin is there, else Debian's ``docker-compose``."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise DockerError("neither `docker compose` nor `docker-compose` is installed "
                      "(apt-get install docker-compose)")


class ContainerLab(Lab):
    HANG_STOPS_CACHES = True
    PARTITION_BY_LINKS = False
    STOPPED = "paused {node} (docker pause)"
    KILLED = "killed {node} (docker kill)"

    def __init__(self, lab_dir: Path, plan: compose.ContainerPlan, state: dict) -> None:
        super().__init__(lab_dir, plan, state)
        self.plan: compose.ContainerPlan = plan
        self._inspected: tuple[float, dict[str, dict]] = (0.0, {})

    @property
    def state_path(self) -> Path:
        return self.dir / "state" / STATE_FILE

    @property
    def project(self) -> str:
        return self.plan.project

    # --- construction

    @classmethod
    def create(cls, topology=None, lab_dir=compose.DEFAULT_PROJECT, base_port=None):
        raise LabError("a container lab is generated, not created: `pymc lab compose "
                       "generate --out DIR`, then `pymc lab compose up --dir DIR`")

    @classmethod
    def attach(cls, lab_dir: str | os.PathLike = "compose") -> "ContainerLab":
        """The Compose project generated in ``lab_dir`` (up or not)."""
        cplan = compose.load_plan(lab_dir)
        state = {"version": 1, "backend": "compose", "topology": cplan.topology,
                 "nodes": [dict(name=n.name, kind=n.kind, dc=n.dc, port=n.port, address="",
                                pid=None, container="", log="") for n in cplan.nodes],
                 "links": [dict(name=link.name, server=link.server, client_dc=link.client_dc,
                                proxy=link.proxy, port=link.port,
                                address=cplan.link_address(link), wan=link.wan)
                           for link in cplan.links],
                 "faults": {}, "partitions": [], "wan_latency_ms": 0}
        lab = cls(Path(lab_dir), cplan, state)
        lab.refresh()
        return lab

    # --- Docker

    def _compose(self, *args: str, progress: Progress = _quiet,
                 timeout: float = 600.0) -> None:
        argv = [*compose_command(), "-p", self.project, "-f",
                str(self.dir / "docker-compose.yml"), *args]
        with subprocess.Popen(argv, cwd=self.dir, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as proc:
            lines = []
            deadline = time.monotonic() + timeout
            for line in proc.stdout:  # progress as it comes (Compose prints to stderr)
                lines.append(line.rstrip())
                progress("  " + line.rstrip())
                if time.monotonic() > deadline:
                    proc.kill()
            if proc.wait() != 0:
                raise DockerError(f"`{' '.join(argv)}` failed:\n" + "\n".join(lines[-15:]))

    def containers(self) -> dict[str, dict]:
        """Node name → ``docker inspect`` of its container, for this project's containers."""
        when, inspected = self._inspected
        if time.monotonic() - when < INSPECT_TTL:
            return inspected
        ids = docker("ps", "-aq", "--filter",
                     f"label=com.docker.compose.project={self.project}").split()
        inspected = {}
        if ids:
            for item in json.loads(docker("inspect", *ids)):
                labels = item["Config"]["Labels"] or {}
                name = labels.get("org.pymc.node") or labels.get("com.docker.compose.service")
                if name:
                    inspected[name] = item
        self._inspected = (time.monotonic(), inspected)
        return inspected

    def _forget(self) -> None:
        self._inspected = (0.0, {})

    def _container(self, node: dict) -> dict | None:
        return self.containers().get(node["name"])

    def _discover(self) -> None:
        """Each node's container, main PID and published 127.0.0.1 address, from Docker."""
        self._forget()
        for node in self.nodes:
            item = self._container(node)
            if item is None:
                node.update(container="", pid=None, address="")
                continue
            node["container"] = item["Id"][:12]
            node["log"] = f"`docker logs {item['Name'].lstrip('/')}`"
            node["pid"] = item["State"].get("Pid") or None
            ports = item["NetworkSettings"].get("Ports") or {}
            bound = ports.get(f"{node['port']}/tcp")
            if bound:
                node["address"] = f"{bound[0]['HostIp']}:{bound[0]['HostPort']}"
            metrics = ports.get(f"{compose.METRICS_PORT.get(node['kind'])}/tcp")
            if metrics:
                node["metrics"] = f"{metrics[0]['HostIp']}:{metrics[0]['HostPort']}"

    # --- what Lab asks of its processes

    def alive(self, node: dict) -> bool:
        item = self._container(node)
        return bool(item and item["State"]["Running"])

    def process_state(self, node: dict) -> tuple[str, float | None]:
        item = self._container(node)
        if not item or not item["State"]["Running"]:
            return "dead", None
        state = "stopped" if item["State"]["Paused"] else "running"
        try:  # the container's processes (docker-init and pymc under it), seen from the host
            main = psutil.Process(item["State"]["Pid"])
            rss = sum(p.memory_info().rss for p in [main, *main.children(recursive=True)])
            return state, round(rss / 2**20, 1)
        except psutil.Error:
            return state, None

    def _spawn(self, node: dict) -> None:
        if not node.get("container"):
            self._discover()
        if not node.get("container"):
            raise LabError(f"{node['name']} has no container; bring the project up with "
                           f"`pymc lab compose up --dir {self.dir}`")
        docker("start", node["container"])
        self._discover()  # Docker may publish a started container on another free port

    def _signal(self, node: dict, signum: int) -> None:
        item = self._container(node)
        if not item or not item["State"]["Running"]:
            return
        paused = item["State"]["Paused"]
        if signum == signal.SIGKILL:
            docker("kill", node["container"])
        elif signum == signal.SIGSTOP and not paused:
            docker("pause", node["container"])
        elif signum == signal.SIGCONT and paused:
            docker("unpause", node["container"])
        elif signum == signal.SIGTERM:
            docker("stop", "-t", "3", node["container"])
        self._forget()

    def _wait_dead(self, node: dict, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.alive(node) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _log_tail(self, node: dict, lines: int = 8) -> str:
        if not node.get("container"):
            return "(no container)"
        text = docker("logs", "--tail", str(lines), node["container"], check=False)
        return "\n".join("    " + line for line in text.splitlines())

    # --- up and down

    def image(self) -> str:
        return os.environ.get("PYMC_IMAGE", "pymc:local")

    def up(self, progress: Progress | None = None, timeout: float = READY_TIMEOUT) -> None:
        """``compose up -d`` (the image must exist: ``build``), then wait until every node
        answers through its published port. On failure the project is taken down again."""
        progress = progress or _quiet
        started = time.monotonic()
        if not docker("images", "-q", self.image()).strip():
            raise LabError(f"no image {self.image()}; build it first with `pymc lab compose "
                           f"build --dir {self.dir}` (--offline on a machine with no registry)")
        progress(f"starting {len(self.nodes)} containers of project {self.project} "
                 f"({self.dir / 'docker-compose.yml'})")
        try:
            self._compose("up", "-d", "--no-build", progress=progress)
            self._discover()
            self.state.update(faults={}, partitions=[], wan_latency_ms=0)
            self._save()
            self._wait_ready([n["name"] for n in self.nodes], progress, started, timeout)
        except BaseException:
            self.down()
            raise
        progress(f"containers up in {time.monotonic() - started:.1f} s")

    def down(self, progress: Progress | None = None) -> list[str]:
        """``compose down``: every container and network of the project removed."""
        progress = progress or _quiet
        self._discover()
        running = [n["name"] for n in self.nodes if n.get("container")]
        self._compose("down", "--remove-orphans", "-t", "3", progress=progress)
        self._forget()
        for node in self.nodes:
            node.update(container="", pid=None, address="")
        self.state.update(faults={}, partitions=[], wan_latency_ms=0)
        if self.state_path.exists():
            self._save()
        return running

    def _require_up(self) -> None:
        if not any(self.alive(n) for n in self.nodes):
            raise NoLab(f"the containers of {self.dir} are not running; start them with "
                        f"`pymc lab compose up --dir {self.dir}`")

    def refresh(self) -> None:
        super().refresh()
        self._discover()

    # --- faults that are Docker's

    def _partition_effect(self, pair: list[str]) -> str:
        return "their routers and fault proxies are disconnected from the wan network"

    def _sync_links(self) -> None:
        super()._sync_links()
        self._sync_wan()

    def _wan_network(self) -> str:
        return f"{self.project}_wan"

    def _sync_wan(self) -> None:
        """Every DC in a partition off the wan network, every other DC on it."""
        cut = {dc for pair in self.state["partitions"] for dc in pair}
        network = self._wan_network()
        for node in self.nodes:
            if node["kind"] not in ("router", "proxy"):
                continue
            item = self._container(node)
            if item is None:
                continue
            attached = network in (item["NetworkSettings"].get("Networks") or {})
            if node["dc"] in cut and attached:
                docker("network", "disconnect", network, node["container"])
            elif node["dc"] not in cut and not attached:
                docker("network", "connect", "--ip", self.plan.ips[node["name"]]["wan"],
                       network, node["container"])
        self._forget()


def build_image(source_root: Path, image: str, base_image: str | None,
                progress: Progress = print) -> None:
    """``docker build`` of compose/Dockerfile (from the wheelhouse when it holds wheels)."""
    argv = ["docker", "build", "-f", str(source_root / "compose" / "Dockerfile"), "-t", image]
    if base_image:
        argv += ["--build-arg", f"BASE_IMAGE={base_image}"]
    argv.append(str(source_root))
    progress(" ".join(argv))
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        tail = []
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            if line.startswith(("Step ", "Successfully", "#")):
                progress("  " + line.rstrip())
        if proc.wait() != 0:
            raise DockerError("docker build failed:\n" + "\n".join(tail))


def run_script(path: Path, *args: str, progress: Progress = print) -> None:
    progress(f"{path} {' '.join(args)}".strip())
    with subprocess.Popen(["bash", str(path), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        tail = []
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            progress("  " + line.rstrip())
        if proc.wait() != 0:
            raise DockerError(f"{path.name} failed:\n" + "\n".join(tail))
