"""A real pymc-server for tests: ``MemcachedServer`` (started and stopped by the test) and
``ServerHandle`` (any memcached address: stats, flush, the debugtime clock, a client).

Two modes: ``subprocess`` runs ``python -m pymc.server``; ``inprocess`` runs the server in
this process on the pymc in-process thread (``pymc.testing._hub``), which starts faster and
lets a debugger or coverage see the server. Both answer the same bytes on a loopback port.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time

from ..protocol.stats import parse_stats

MODES = ("subprocess", "inprocess")
#: The mode used when none is given (the pytest plugin passes its own).
MODE_ENV = "PYMC_TESTING_MODE"
READY_TIMEOUT = 15.0
EX_OSERR = 71  # what pymc-server and pymc-router exit with when they cannot listen

#: Servers, routers and labs started and not stopped yet: stopped at exit if still running.
_running: set = set()


def default_mode(mode: str | None = None) -> str:
    mode = mode or os.environ.get(MODE_ENV) or "subprocess"
    if mode not in MODES:
        raise ValueError(f"pymc mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# -- the wire -----------------------------------------------------------------------------------

def exchange(host: str, port: int, lines, timeout: float = 5.0) -> list[bytes]:
    """Send text-protocol command lines on a fresh connection; each one's whole reply."""
    lines = [line.encode() if isinstance(line, str) else line for line in lines]
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(line + b"\r\n" for line in lines))
        reader = sock.makefile("rb")
        return [_read_reply(reader) for _ in lines]


def _read_reply(reader) -> bytes:
    out = b""
    while True:
        line = reader.readline()
        if not line.endswith(b"\n"):
            raise ConnectionError("the server closed the connection")
        out += line
        words = line.split()
        head = words[0] if words else b""
        if head == b"VALUE" and len(words) >= 4:  # get/gets: a data block, more may follow
            out += reader.read(int(words[3]) + 2)
        elif head == b"VA" and len(words) >= 2:  # mg: one data block ends the reply
            return out + reader.read(int(words[1]) + 2)
        elif head not in (b"STAT", b"ITEM"):
            return out


def answers(host: str, port: int) -> bool:
    """Whether a server on ``host:port`` answers a ``version`` line; any reply counts (a -Y
    server refuses it until the client authenticates, but it is up)."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"version\r\n")
            return sock.recv(100).endswith(b"\r\n")
    except OSError:
        return False


class ServerHandle:
    """A memcached (pymc-server, or anything speaking the text protocol) at ``host:port``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, name: str = "") -> None:
        self.host = host
        self.port = port
        self.name = name
        self.time_offset = 0  # seconds this handle moved the server's clock (debugtime)
        self._clients: list = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        name = f" {self.name}" if self.name else ""
        return f"<{type(self).__name__}{name} {self.address}>"

    def command(self, line: str | bytes, timeout: float = 5.0) -> bytes:
        """One text-protocol command line (no data block); its whole reply, raw."""
        return exchange(self.host, self.port, [line], timeout)[0]

    def stats(self, group: str = "") -> dict:
        """``stats [group]`` as name → value (ints where the value is a whole number)."""
        reply = self.command(f"stats {group}".strip())
        if not reply.endswith(b"END\r\n"):
            raise RuntimeError(f"stats {group} on {self.address}: {reply!r}")
        return parse_stats(reply)

    def flush(self) -> None:
        """``flush_all``: every item goes."""
        self._expect(["flush_all"], [b"OK\r\n"])

    def advance_time(self, seconds: int) -> None:
        """Move the server's clock forward (or back, if negative) with ``debugtime``: items
        set with a TTL of ``seconds`` or less have expired afterwards, without sleeping."""
        if int(seconds) != seconds:
            raise ValueError("memcached's clock counts whole seconds; advance by an int")
        seconds = int(seconds)
        self._expect([f"debugtime {seconds}"], [b"OK\r\n"])
        self.time_offset += seconds

    def reset(self) -> None:
        """Back to a clean server: the clock offset undone, every item flushed, the counters
        of ``stats reset`` zeroed, clients made by ``client()`` closed."""
        self._close_clients()
        # The flush happens one second back on the clock: a flush makes items stored in its
        # own second go too (memcached's rule without CAS, -C), and the test comes after it.
        self._expect([f"debugtime {-self.time_offset - 1}", "flush_all", "debugtime 1",
                      "stats reset", *self._restore_lines()],
                     [b"OK\r\n", b"OK\r\n", b"OK\r\n", b"RESET\r\n"])
        self.time_offset = 0

    def _restore_lines(self) -> list[str]:
        return []

    def _close_clients(self) -> None:
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - a broken client must not stop the reset
                pass
        self._clients.clear()

    def client(self, **kwargs):
        """A pymemcache ``Client`` for this server (``default_noreply=False`` unless given);
        closed by ``reset()`` or ``stop()``."""
        from pymemcache.client.base import Client

        kwargs.setdefault("default_noreply", False)
        kwargs.setdefault("connect_timeout", 5)
        kwargs.setdefault("timeout", 5)
        client = Client((self.host, self.port), **kwargs)
        self._clients.append(client)
        return client

    def _expect(self, lines: list[str], replies: list[bytes]) -> None:
        """Send ``lines``; each reply must be the one expected (``OK`` past ``replies``)."""
        got = exchange(self.host, self.port, lines)
        replies = replies + [b"OK\r\n"] * (len(lines) - len(replies))
        for line, reply, expected in zip(lines, got, replies):
            if reply != expected:
                hint = ("; the server needs -o debugtime" if line.startswith("debugtime")
                        and reply.startswith(b"ERROR") else "")
                raise RuntimeError(f"{line!r} on {self.address} answered "
                                   f"{reply.decode(errors='replace').strip()!r}{hint}")


# -- what the test owns -------------------------------------------------------------------------

class _Lifecycle:
    """Started by ``with`` or ``start()``, stopped by the block's end or ``stop()``; anything
    still running when the process exits is stopped then (``_running``)."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start_or_clean_up(self, bring_up):
        """``bring_up()``; if it fails part way, ``stop()`` undoes what it got running."""
        try:
            bring_up()
        except BaseException:
            self.stop()
            raise
        _running.add(self)
        return self


class _Service(_Lifecycle, ServerHandle):
    """A pymc-server or pymc-router the test runs: a subprocess (``proc``, its output in
    ``_log``) or, in-process, ``_server`` on the shared hub thread (``_hub``)."""

    def __init__(self, host: str, port: int, name: str = "") -> None:
        super().__init__(host, port, name)
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._server = None
        self._hub = None

    @property
    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self._server is not None and bool(self._server.listeners)

    def log(self) -> str:
        """What a subprocess printed so far (in-process ones log through ``logging``)."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _stop_service(self) -> None:
        """Its clients closed, then the subprocess or in-process server stopped (SIGTERM, then
        SIGKILL; in-process: listeners and connections closed). Safe to call twice."""
        self._close_clients()
        if self.proc is not None:
            from ..processes import stop_process
            stop_process(self.proc)
            self.proc = None
        if self._server is not None:
            server, self._server = self._server, None
            try:
                self._hub.call(server.stop)
            finally:
                from . import _hub
                _hub.release()
                self._hub = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _start_on_hub(self, build) -> None:
        """Run ``build()`` (it returns the started server) on the in-process hub thread."""
        from . import _hub

        self._hub = _hub.acquire()
        try:
            self._server = self._hub.call(build)
        except BaseException:
            self._hub = None
            _hub.release()
            raise
        self.port = self._server.port


class MemcachedServer(_Service):
    """A pymc-server on a free 127.0.0.1 port, with ``-o debugtime`` (for ``advance_time``)
    unless ``debugtime=False``; ``args`` are pymc-server's (memcached's) flags.

    ``with MemcachedServer(mode="inprocess") as server: ...`` starts and stops it.
    """

    def __init__(self, *args: str, mode: str | None = None, debugtime: bool = True,
                 port: int = 0, host: str = "127.0.0.1", name: str = "",
                 ready_timeout: float = READY_TIMEOUT) -> None:
        super().__init__(host, port, name)
        self.mode = default_mode(mode)
        self.args = [str(arg) for arg in args]
        if "-p" in self.args or "-l" in self.args:
            raise ValueError("give the port and host as port= and host=, not -p/-l")
        if debugtime and not any("debugtime" in arg for arg in self.args):
            self.args += ["-o", "debugtime"]
        self.debugtime = any("debugtime" in arg for arg in self.args)
        self.ready_timeout = ready_timeout
        self._requested_port = port
        self._initial: dict = {}  # its ``stats settings`` once started

    def start(self) -> "MemcachedServer":
        start_all([self])
        return self

    def reset(self) -> None:
        """A clean server for the next test: restarted if it died, else ``ServerHandle.reset``
        (clock offset undone, flushed, counters reset) plus ``cache_memlimit`` and
        ``verbosity`` back to what the server started with."""
        if not self.running:
            self.stop()
            self.start()
            return
        if self.debugtime:
            super().reset()
        else:
            self._close_clients()
            self._expect(["flush_all", "stats reset", *self._restore_lines()],
                         [b"OK\r\n", b"RESET\r\n"])

    def _restore_lines(self) -> list[str]:
        lines = [f"verbosity {self._initial.get('verbosity', 0)}"]
        megabytes, rest = divmod(self._initial.get("maxbytes", 0), 1024 * 1024)
        if megabytes >= 8 and not rest:  # what cache_memlimit can set
            lines.append(f"cache_memlimit {megabytes}")
        return lines

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL; in-process: close its listeners and
        connections). Safe to call twice."""
        self._stop_service()
        self.time_offset = 0
        _running.discard(self)

    # -- subprocess ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        self.port = self._requested_port or free_port(self.host)
        if self._log is None:
            self._log = tempfile.TemporaryFile()
        argv = [sys.executable, "-m", "pymc.server", "-p", str(self.port), "-l", self.host,
                *self.args]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self._deadline = time.monotonic() + self.ready_timeout
        _running.add(self)

    def _wait_ready(self) -> None:
        attempts = 1
        while not answers(self.host, self.port):
            code = self.proc.poll()
            if code is not None:
                if code == EX_OSERR and not self._requested_port and attempts < 5:
                    attempts += 1  # someone took the free port meanwhile: another one
                    self._spawn()
                    continue
                log = self.log()
                self.stop()
                raise RuntimeError(f"pymc-server {' '.join(self.args)} exited with {code}: "
                                   f"{log.strip()[-2000:]}")
            if time.monotonic() > self._deadline:
                log = self.log()
                self.stop()
                raise RuntimeError(f"pymc-server did not answer within {self.ready_timeout:g}"
                                   f" s: {log.strip()[-2000:]}")
            time.sleep(0.02)

    # -- in-process ---------------------------------------------------------------------------

    def _settings(self):
        """pymc-server's settings for ``args`` (UsageError for bad flags); ValueError for
        flags that run no server this object could stop: help, version, -d (a daemon would
        outlive ``stop()``)."""
        from ..server.settings import parse_args

        settings, action = parse_args(["-p", str(self._requested_port), "-l", self.host,
                                       *self.args])
        if action is not None or settings.daemonize:
            raise ValueError(f"pymc-server {' '.join(self.args)} does not run a server to "
                             "stop (help, version or -d)")
        return settings

    def _check_serving_flags(self) -> None:
        """``_settings``' ValueError; bad flags are left to the subprocess to report."""
        from ..server.settings import UsageError

        try:
            self._settings()
        except UsageError:
            pass

    def _start_inprocess(self) -> None:
        from ..server.settings import UsageError

        try:
            settings = self._settings()
        except UsageError as exc:
            raise ValueError(f"pymc-server {' '.join(self.args)}: {exc}") from None

        def build():
            from ..server.app import Server
            server = Server(settings)
            server.start()
            return server

        self._start_on_hub(build)
        _running.add(self)


def start_all(servers) -> None:
    """Start several servers at once (subprocesses boot in parallel)."""
    spawned = []
    try:
        for server in servers:
            if server.running:
                continue
            if server.mode == "inprocess":
                server._start_inprocess()
            else:
                server._check_serving_flags()
                server._spawn()
                spawned.append(server)
        for server in spawned:
            server._wait_ready()
        for server in servers:
            try:
                server._initial = server.stats("settings")
            except RuntimeError:  # -Y: a client must authenticate first
                server._initial = {}
    except BaseException:
        for server in servers:
            server.stop()
        raise


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        server.stop()
