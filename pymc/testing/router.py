"""A pymc-router for tests, with its backends started for it: ``Router(config, *flags)``.

The config is mcrouter's JSON (a dict, JSON text or a file path). In its top-level ``pools``,
servers the test does not have yet are written as placeholders and get a real pymc-server
each (started in parallel, stopped with the router); the config is rewritten to their
addresses before the router reads it:

- ``"servers": 3`` — a pool of three new servers;
- ``"auto"`` in a server list — one new server;
- a name without a colon (``"mc1"``) — a new server, the same one wherever the name appears
  (so pools can share servers), found again in ``router.named["mc1"]``;
- anything else (``"127.0.0.1:11211"``, ``"[::1]:5000:ascii"``) — used as it is.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .servers import (READY_TIMEOUT, MemcachedServer, ServerHandle, _running, _Service,
                      default_mode, exchange, start_all)

AUTO = "auto"


def load_config(config) -> tuple[dict, Path | None]:
    """(config as a dict, the file it came from or None)."""
    from ..router.jsonc import loads

    if isinstance(config, dict):
        return copy.deepcopy(config), None
    if isinstance(config, str) and config.lstrip().startswith("{"):
        return loads(config), None
    path = Path(config)
    return loads(path.read_text(encoding="utf-8")), path


def is_placeholder(server) -> bool:
    return isinstance(server, str) and ":" not in server


class Router(_Service):
    """pymc-router on a free 127.0.0.1 port for ``config`` with mcrouter ``flags``; the
    backends its placeholders ask for run in the same ``mode`` with ``server_args``.

    ``router.servers`` maps each pool to its servers in config order (``MemcachedServer``
    for started ones, ``ServerHandle`` for addresses given as they are). ``stats(group)``
    takes the router's groups (``all``, ``detailed``, ``servers``, ``suspect_servers``, ...).
    """

    def __init__(self, config, *flags: str, mode: str | None = None, server_args=(),
                 workdir: str | os.PathLike | None = None,
                 ready_timeout: float = READY_TIMEOUT) -> None:
        super().__init__("127.0.0.1", 0)
        self.mode = default_mode(mode)
        self.flags = [str(flag) for flag in flags]
        self.server_args = [str(arg) for arg in server_args]
        self.ready_timeout = ready_timeout
        self.config, self._source = load_config(config)
        self.servers: dict[str, list[ServerHandle]] = {}
        self.named: dict[str, MemcachedServer] = {}
        self.backends: list[MemcachedServer] = []  # every server started for this router
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self.config_path: Path | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "Router":
        return self._start_or_clean_up(self._start_with_backends)

    def _start_with_backends(self) -> None:
        rewritten = self._plan_backends()
        start_all(self.backends)
        self._write_config(rewritten)
        if self.mode == "inprocess":
            self._start_inprocess()
        else:
            self._start_subprocess()

    def stop(self) -> None:
        """Stop the router, then the servers started for it. Safe to call twice."""
        self._stop_service()
        for backend in self.backends:
            backend.stop()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        _running.discard(self)

    def reset(self) -> None:
        """Every started backend back to clean (``MemcachedServer.reset``)."""
        for backend in self.backends:
            backend.reset()

    def flush(self) -> None:
        """``flush_all`` on every started backend, directly (the router itself routes
        flush_all only with --enable-flush-cmd)."""
        for backend in self.backends:
            backend.flush()

    # -- asking the router --------------------------------------------------------------------

    def admin(self, command: str) -> str:
        """``get __mcrouter__.<command>``'s value, e.g. ``admin("route(set,user:1)")``."""
        reply = self.command(f"get __mcrouter__.{command}")
        header, _, rest = reply.partition(b"\r\n")
        if not header.startswith(b"VALUE "):
            raise RuntimeError(f"__mcrouter__.{command}: {reply.decode(errors='replace')!r}")
        return rest[:int(header.split()[3])].decode(errors="replace")

    def route(self, key: str, op: str = "get") -> list[str]:
        """The ``host:port`` of every server ``op`` on ``key`` goes to."""
        return [line for line in self.admin(f"route({op},{key})").splitlines() if line]

    def server_for(self, key: str, op: str = "get") -> ServerHandle:
        """The one server ``op`` on ``key`` goes to (one of ``servers``)."""
        targets = self.route(key, op)
        if len(targets) != 1:
            raise LookupError(f"{op} {key} goes to {len(targets)} servers: {targets}")
        for handles in self.servers.values():
            for handle in handles:
                if handle.address == targets[0]:
                    return handle
        host, _, port = targets[0].rpartition(":")
        return ServerHandle(host.strip("[]"), int(port))

    def advance_time(self, seconds: int) -> None:
        """Move the clock of every started backend (``MemcachedServer.advance_time``)."""
        for backend in self.backends:
            backend.advance_time(seconds)

    # -- building -----------------------------------------------------------------------------

    def _new_server(self, name: str = "") -> MemcachedServer:
        server = MemcachedServer(*self.server_args, mode=self.mode, name=name)
        self.backends.append(server)
        return server

    def _plan_backends(self) -> dict:
        """Decide which servers to start; the config with their addresses (filled in once
        they run, since a server's port is known only then)."""
        from ..router.access_point import parse_access_point
        from ..router.jsonc import ConfigError

        self.servers, self.named, self.backends = {}, {}, []
        config = copy.deepcopy(self.config)
        pools = config.get("pools")
        if not isinstance(pools, dict):
            return config
        for pool_name, pool in pools.items():
            if not isinstance(pool, dict) or "servers" not in pool:
                continue
            servers = pool["servers"]
            if isinstance(servers, int) and not isinstance(servers, bool):
                servers = [AUTO] * servers
            if not isinstance(servers, list):
                continue
            handles: list[ServerHandle] = []
            for entry in servers:
                if entry == AUTO:
                    handles.append(self._new_server())
                elif is_placeholder(entry):
                    if entry not in self.named:
                        self.named[entry] = self._new_server(entry)
                    handles.append(self.named[entry])
                elif isinstance(entry, str):
                    try:
                        point = parse_access_point(entry)
                    except ConfigError as exc:
                        raise ValueError(f"pools.{pool_name}.servers: {exc}") from None
                    handles.append(ServerHandle(point.host, point.port))
                else:
                    raise ValueError(f"pools.{pool_name}.servers: {entry!r} is not a server")
            pool["servers"] = handles
            self.servers[pool_name] = handles
        return config

    def _write_config(self, config: dict) -> None:
        pools = config.get("pools")
        if isinstance(pools, dict):
            for name, handles in self.servers.items():
                pools[name]["servers"] = [
                    handle.address if isinstance(handle, MemcachedServer)
                    else self._original_entry(name, index)
                    for index, handle in enumerate(handles)]
        if self._source is not None and not self.backends:
            self.config_path = self._source  # nothing to fill in: the file as it is
            return
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pymc-router-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / f"mcrouter-{id(self):x}.json"
        self.config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self.config = config

    def _original_entry(self, pool: str, index: int) -> str:
        servers = self.config["pools"][pool]["servers"]
        return servers[index]

    def _argv(self) -> list[str]:
        argv = ["--config", f"file:{self.config_path}"]
        if not any(flag in ("-p", "--port") or flag.startswith("--port=")
                   for flag in self.flags):
            argv += ["-p", "0"]
        return argv + self.flags

    def _start_subprocess(self) -> None:
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "pymc.router", *self._argv()],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_timeout
        marker = "pymc-router listening on "
        while True:
            log = self.log()
            if marker in log:
                self.port = int(log.split(marker, 1)[1].split()[0].rsplit(":", 1)[1])
                break
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(f"pymc-router exited with {code}: {log.strip()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"pymc-router did not start within {self.ready_timeout:g}"
                                   f" s: {log.strip()[-2000:]}")
            time.sleep(0.02)
        exchange(self.host, self.port, ["version"])

    def _start_inprocess(self) -> None:
        from ..router.cli import build_parser, options_from
        from ..router.jsonc import ConfigError

        try:
            args = build_parser().parse_args(self._argv())
        except SystemExit:
            raise ValueError(f"pymc-router: bad flags {self.flags}") from None
        if args.version or args.validate_config == "exit":
            raise ValueError("pymc-router -V / --validate-config does not run a router")
        try:
            options = options_from(args)
        except ConfigError as exc:
            raise ValueError(f"pymc-router: {exc}") from None

        def build():
            from ..router.server import RouterServer
            server = RouterServer(options)
            server.start()
            return server

        try:
            self._start_on_hub(build)
        except ConfigError as exc:
            raise RuntimeError(f"pymc-router: bad config: {exc}") from None
