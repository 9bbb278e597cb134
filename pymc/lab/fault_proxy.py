"""A user-space TCP proxy that makes backends slow, hung, lossy or refusing on command.

The lab has no root and no netem, so faults are injected here instead: one process forwards
one listen address to one upstream ``host:port`` and obeys one-line commands on a control
port (``pass``/``heal``, ``slow <ms>``, ``hang``, ``loss <pct>``, ``refuse``, ``reset``,
``status``; see ``FaultProxy.execute``).

One process can also serve many named links (``ProxyGroup``; ``--link NAME=LISTEN,UPSTREAM``
repeated, or ``--links-file FILE`` with ``{"NAME": {"listen": ..., "upstream": ...}}``), each
with its own fault, behind one control port: the lab runs one such process per DC instead of
one per link. A command then may start with ``@PATTERN``, a glob over link names
(``@eqiad-mc1/* slow 100``, ``@*/codfw refuse``); without it, it applies to every link.
``status`` answers ``{name: status}`` (a bare status only for a process with one link and no
``@``), ``links`` lists ``{name: {listen, upstream}}``. ``control_many`` sends a batch over one
connection.

``loss`` drops connections, not packets: from user space a TCP stream cannot lose a single
segment, so a "lost" chunk resets its whole connection, and a "lost" connect is closed at
once.

Run it as its own process (it never monkey-patches, so it must not share a process with
blocking code): ``python -m pymc.lab.fault_proxy --listen 127.0.0.1:0 --upstream HOST:PORT``.
It prints one JSON line (listen address, control address, pid) when ready. From Python, use
``FaultProxyProcess`` and ``control``.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import logging
import math
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gevent
import gevent.pool
from gevent import socket as gsocket
from gevent.event import Event

from ..processes import stop_process
from .faults import NEEDS_NUMBER
from .wire import parse_address

logger = logging.getLogger("pymc.lab.fault_proxy")

CHUNK_BYTES = 64 * 1024
# Past this much delayed data in one direction the reader stops, so TCP back-pressure reaches
# the sender instead of the proxy's memory growing.
MAX_QUEUED_BYTES = 4 * 1024 * 1024
CONNECT_TIMEOUT = 5.0
MAX_CONTROL_LINE = 4096
EX_OSERR = 71  # what pymc-server and pymc-router return when they cannot listen


def format_address(address: tuple) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _listen(address: tuple[str, int]) -> gsocket.socket:
    sock = gsocket.socket(_family(address[0]), socket.SOCK_STREAM)
    # Without it `pass` after `refuse` could not bind the port again while connections the
    # proxy closed sit in TIME_WAIT on it.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def _close(sock) -> None:
    if sock is not None:
        sock.close()


def _reset(sock) -> None:
    """Close with RST rather than FIN, so the peer sees a failure and not a clean end."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Direction:
    """One way of one connection. The reader queues (time read, bytes); the writer sends each
    chunk once the current delay has passed since it was read, so `slow` adds latency without
    limiting throughput, and order is kept. An empty chunk stands for the peer's FIN."""

    def __init__(self, connection: "Connection", source, sink, counter: str) -> None:
        self.connection = connection
        self.proxy = connection.proxy
        self.source, self.sink, self.counter = source, sink, counter
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.queued_bytes = 0
        # One event per waiting greenlet: each is cleared only by its own waiter.
        self.may_read = Event()
        self.may_write = Event()

    def poke(self) -> None:
        self.may_read.set()
        self.may_write.set()

    def read_loop(self) -> None:
        try:
            while True:
                # In `hang` nothing is read at all, so senders feel TCP back-pressure and
                # nothing needs buffering until `heal`.
                while self.proxy.mode == "hang" or self.queued_bytes >= MAX_QUEUED_BYTES:
                    self.may_read.clear()
                    self.may_read.wait()
                data = self.source.recv(CHUNK_BYTES)
                if data and self.proxy.loses():
                    logger.info("loss: resetting %s", self.connection)
                    self.connection.abort()
                    return
                self.queue.append((time.monotonic(), data))
                self.queued_bytes += len(data)
                self.may_write.set()
                if not data:
                    return
        except OSError:
            self.connection.abort()

    def write_loop(self) -> None:
        try:
            while True:
                while not self.queue:
                    self.may_write.clear()
                    self.may_write.wait()
                read_at, data = self.queue[0]
                self._wait_until_due(read_at)
                self.queue.popleft()
                if not data:
                    self.sink.shutdown(socket.SHUT_WR)
                    self.connection.direction_finished()
                    return
                self.sink.sendall(data)
                self.queued_bytes -= len(data)
                self.proxy.counters[self.counter] += len(data)
                self.may_read.set()
        except OSError:
            self.connection.abort()

    def _wait_until_due(self, read_at: float) -> None:
        # Re-evaluated after every mode change: `pass` releases delayed chunks at once, and
        # the loop (not the timer) decides, as timers may fire a little early.
        while True:
            if self.proxy.mode == "hang":
                timeout = None
            else:
                timeout = read_at + self.proxy.delay - time.monotonic()
                if timeout <= 0:
                    return
            self.may_write.clear()
            self.may_write.wait(timeout)


class Connection:
    """A client connection and its upstream connection, with one Direction each way."""

    def __init__(self, proxy: "FaultProxy", client) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = None
        self.directions: list[Direction] = []
        self.may_connect = Event()
        self.greenlets: list[gevent.Greenlet] = []
        self.finished_directions = 0
        self.closed = False
        try:
            self.peer = format_address(client.getpeername())
        except OSError:
            self.peer = "?"

    def __str__(self) -> str:
        return f"connection from {self.peer}"

    def start(self) -> None:
        self._spawn(self._connect_and_forward)

    def poke(self) -> None:
        self.may_connect.set()
        for direction in self.directions:
            direction.poke()

    def _spawn(self, function) -> None:
        self.greenlets.append(gevent.spawn(function))

    def _connect_and_forward(self) -> None:
        # A hung backend does not even see the connect; it happens on `heal`.
        while self.proxy.mode == "hang":
            self.may_connect.clear()
            self.may_connect.wait()
        self.upstream = gsocket.socket(_family(self.proxy.upstream[0]), socket.SOCK_STREAM)
        try:
            self.upstream.settimeout(CONNECT_TIMEOUT)
            self.upstream.connect(self.proxy.upstream)
            self.upstream.settimeout(None)
            self.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            logger.warning("%s: upstream %s unreachable (%s); closing the client", self,
                           format_address(self.proxy.upstream), exc)
            self.abort()
            return
        if self.closed:  # reset while connecting
            _reset(self.upstream)
            return
        self.directions = [Direction(self, self.client, self.upstream, "bytes_to_upstream"),
                           Direction(self, self.upstream, self.client, "bytes_to_client")]
        for direction in self.directions:
            self._spawn(direction.read_loop)
            self._spawn(direction.write_loop)

    def direction_finished(self) -> None:
        """Both FINs delivered: the connection ended cleanly."""
        self.finished_directions += 1
        if self.finished_directions == len(self.directions):
            self.close()

    def close(self) -> None:
        self._end(_close)

    def abort(self) -> None:
        self._end(_reset)

    def _end(self, closer) -> None:
        if self.closed:
            return
        self.closed = True
        closer(self.client)
        closer(self.upstream)
        current = gevent.getcurrent()
        for greenlet in self.greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)
        self.proxy.connections.discard(self)


class ControlServer:
    """The control port: one-line commands, one reply line each (``execute``)."""

    control_listener = None
    background: gevent.pool.Group

    def _serve_control(self, listener) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError as exc:
                if listener is not self.control_listener:  # closed on exit
                    return
                logger.warning("control accept failed: %s", exc)
                gevent.sleep(0.1)
                continue
            self.background.spawn(self._control_session, sock)

    def _control_session(self, sock) -> None:
        pending = b""
        skipping = False  # inside a line too long to keep, already answered with ERROR
        try:
            while True:
                data = sock.recv(MAX_CONTROL_LINE)
                if not data:
                    return
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if skipping:
                        skipping = False
                        continue
                    reply = self.execute(line.decode("utf-8", "replace").strip())
                    sock.sendall(reply.encode() + b"\n")
                if len(pending) > MAX_CONTROL_LINE:
                    if not skipping:
                        sock.sendall(b"ERROR command too long\n")
                    skipping, pending = True, b""
        except OSError:
            pass
        finally:
            sock.close()

    def execute(self, line: str) -> str:
        """One control command; the reply line (without newline). Never raises."""
        try:
            return self._execute(line.split())
        except Exception as exc:  # noqa: BLE001 - a control client must not stop the proxy
            logger.exception("control command %r failed", line)
            return f"ERROR internal error: {exc}"

    def _execute(self, words: list[str]) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _close_control(self) -> None:
        if self.control_listener is not None:
            self.control_listener, listener = None, self.control_listener
            listener.close()
        self.background.kill(block=False)


class FaultProxy(ControlServer):
    """The listening side, the current fault and the control protocol."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int],
                 name: str = "") -> None:
        self.name = name
        self.listen_address = listen
        self.upstream = upstream
        self.mode = "pass"
        self.parameter: float | None = None
        self.connections: set[Connection] = set()
        self.counters = {"connections_total": 0, "bytes_to_upstream": 0, "bytes_to_client": 0}
        self.listener = None
        self.control_listener = None
        self.background = gevent.pool.Group()
        self.accepting: gevent.Greenlet | None = None
        self.random = random.Random()

    # --- the fault as the forwarding code sees it

    @property
    def delay(self) -> float:
        return self.parameter / 1000.0 if self.mode == "slow" else 0.0

    def loses(self) -> bool:
        return self.mode == "loss" and self.random.random() * 100 < self.parameter

    # --- sockets

    def open(self, control: tuple[str, int]) -> None:
        """Bind both ports (raises OSError); port 0 becomes the port the kernel chose, so that
        `refuse` then `pass` reopens the very same port."""
        self.open_link()
        self.control_listener = _listen(control)
        self.background.spawn(self._serve_control, self.control_listener)

    def open_link(self) -> None:
        """Bind the forwarding port only (a link of a ProxyGroup has no control port)."""
        self._open_listener()
        self.listen_address = self.listener.getsockname()[:2]

    def _open_listener(self) -> None:
        self.listener = _listen(self.listen_address)
        self.accepting = gevent.spawn(self._accept, self.listener)

    def _close_listener(self) -> None:
        if self.accepting is not None:
            self.accepting.kill(block=False)
            self.accepting = None
        if self.listener is not None:
            self.listener.close()  # connects still in the backlog get a reset
            self.listener = None

    def close(self) -> None:
        self._close_listener()
        self._close_control()
        for connection in list(self.connections):
            connection.close()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError as exc:
                if listener is not self.listener:  # closed by `refuse`
                    return
                logger.warning("accept failed: %s", exc)  # e.g. out of file descriptors
                gevent.sleep(0.1)
                continue
            self.counters["connections_total"] += 1
            if self.loses():
                logger.info("loss: dropping a new connection")
                _reset(client)
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(self, client)
            self.connections.add(connection)
            connection.start()

    # --- control

    def _execute(self, words: list[str]) -> str:
        if not words:
            return "ERROR empty command; try: " + COMMANDS
        verb, args = words[0].lower(), words[1:]
        if verb in NUMBER_ARGUMENTS:
            name, highest = NUMBER_ARGUMENTS[verb]
            if len(args) != 1:
                return f"ERROR usage: {verb} <{name}>"
            try:
                value = float(args[0])
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and 0 <= value <= highest):
                return f"ERROR {verb}: {name} must be a number from 0 to {highest:g}"
            return self.set_fault(verb, value)
        if verb not in ("pass", "heal", "hang", "refuse", "reset", "status"):
            return f"ERROR unknown command {verb!r}; expected one of: " + COMMANDS
        if args:
            return f"ERROR {verb} takes no argument"
        if verb == "status":
            return json.dumps(self.status(), separators=(",", ":"))
        if verb == "reset":
            self.reset_connections()
            return "OK"
        return self.set_fault("pass" if verb == "heal" else verb, None)

    def set_fault(self, mode: str, parameter: float | None) -> str:
        if mode == "refuse":
            self._close_listener()
            self.reset_connections()
        elif self.listener is None:
            try:
                self._open_listener()
            except OSError as exc:
                return (f"ERROR cannot listen on {format_address(self.listen_address)} again: "
                        f"{exc.strerror}; still refusing")
        self.mode, self.parameter = mode, parameter
        logger.info("fault: %s", mode if parameter is None else f"{mode} {parameter:g}")
        for connection in list(self.connections):
            connection.poke()
        return "OK"

    def reset_connections(self) -> None:
        for connection in list(self.connections):
            connection.abort()

    def status(self) -> dict:
        parameter = self.parameter
        if parameter is not None and parameter == int(parameter):
            parameter = int(parameter)
        return {"mode": self.mode, "parameter": parameter,
                "listening": self.listener is not None,
                "connections_open": len(self.connections), **self.counters,
                "listen": format_address(self.listen_address),
                "upstream": format_address(self.upstream)}


class ProxyGroup(ControlServer):
    """Many named links (each a FaultProxy without its own control port) in one process, with
    one control port. A command may start with ``@PATTERN`` (an fnmatch glob over link names,
    e.g. ``@eqiad-mc1/*``); without one it applies to every link. ``links`` lists them."""

    def __init__(self, links: dict[str, tuple[tuple[str, int], tuple[str, int]]]) -> None:
        self.links = {name: FaultProxy(listen, upstream, name)
                      for name, (listen, upstream) in links.items()}
        self.background = gevent.pool.Group()

    def open(self, control: tuple[str, int]) -> None:
        """Bind every link and the control port; OSError names the link that failed."""
        for name, link in self.links.items():
            try:
                link.open_link()
            except OSError as exc:
                exc.link = name  # type: ignore[attr-defined]
                raise
        self.control_listener = _listen(control)
        self.background.spawn(self._serve_control, self.control_listener)

    def close(self) -> None:
        self._close_control()
        for link in self.links.values():
            link.close()

    def _execute(self, words: list[str]) -> str:
        selected = list(self.links)
        selector = words and words[0].startswith("@")
        if selector:
            pattern, words = words[0][1:], words[1:]
            selected = [name for name in self.links if fnmatch.fnmatchcase(name, pattern)]
            if not selected:
                return (f"ERROR no link matches {pattern!r}; links: "
                        + ", ".join(self.links))
        if words and words[0].lower() == "links" and len(words) == 1:
            return json.dumps({name: {"listen": format_address(self.links[name].listen_address),
                                      "upstream": format_address(self.links[name].upstream)}
                               for name in selected}, separators=(",", ":"))
        if words and words[0].lower() == "status" and len(words) == 1:
            if len(self.links) == 1 and not selector:
                return json.dumps(next(iter(self.links.values())).status(),
                                  separators=(",", ":"))
            return json.dumps({name: self.links[name].status() for name in selected},
                              separators=(",", ":"))
        replies = {name: self.links[name]._execute(list(words)) for name in selected}
        failed = {name: reply for name, reply in replies.items() if reply != "OK"}
        if not failed:
            return "OK"
        distinct = set(failed.values())
        if len(distinct) == 1 and len(failed) == len(replies):
            return distinct.pop()  # the same complaint from every link: say it once
        return "ERROR " + "; ".join(f"{name}: {reply.removeprefix('ERROR ')}"
                                    for name, reply in failed.items())


COMMANDS = "pass, heal, slow <ms>, hang, loss <pct>, refuse, reset, status"
# verb: (argument's name, largest value): the lab's own limits (pymc.lab.faults).
NUMBER_ARGUMENTS = {verb: (name.lower(), highest)
                    for verb, (name, highest) in NEEDS_NUMBER.items()}


# --- command line


def _listen_argument(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _upstream_argument(text: str) -> tuple[str, int]:
    """Resolved once, here: connects then never wait on DNS (nor start gevent's resolver
    threads), and a misspelt host fails at start rather than on every connection."""
    try:
        host, port = parse_address(text, any_port=False)
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][:2]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot resolve {text!r}: {exc.strerror}") from None


def _link_argument(text: str) -> tuple[str, tuple[str, int], tuple[str, int]]:
    """``NAME=LISTEN,UPSTREAM``."""
    name, equals, rest = text.partition("=")
    listen, comma, upstream = rest.partition(",")
    if not equals or not comma or not name or any(c.isspace() or c in "@*?[" for c in name):
        raise argparse.ArgumentTypeError(
            f"bad link {text!r}: expected NAME=LISTEN,UPSTREAM, e.g. "
            "eqiad-mc1/codfw=127.0.0.1:0,127.0.0.1:11211 (no spaces, @, *, ? or [ in NAME)")
    return name, _listen_argument(listen), _upstream_argument(upstream)


def _links_file(path: str) -> list[tuple[str, tuple[str, int], tuple[str, int]]]:
    """A JSON object ``{"NAME": {"listen": "HOST:PORT", "upstream": "HOST:PORT"}, ...}``."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return [_link_argument(f"{name}={spec['listen']},{spec['upstream']}")
                for name, spec in data.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(
            f"cannot read links file {path!r} ({exc}); expected a JSON object "
            '{"NAME": {"listen": "HOST:PORT", "upstream": "HOST:PORT"}, ...}') from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pymc.lab.fault_proxy",
        description="Forward TCP addresses to upstreams, injecting faults on command. Either "
                    "one link (--listen and --upstream) or named links (--link, repeatable, "
                    "or --links-file); with named links a command may start with @PATTERN "
                    "(a glob over link names) and `links` lists them. Prints one JSON line "
                    "when ready; control commands: " + COMMANDS + ".")
    parser.add_argument("--listen", type=_listen_argument,
                        help="address to accept clients on; port 0 picks a free port")
    parser.add_argument("--upstream", type=_upstream_argument,
                        help="the backend HOST:PORT")
    parser.add_argument("--link", action="append", default=[], type=_link_argument,
                        metavar="NAME=LISTEN,UPSTREAM", help="a named link (repeatable)")
    parser.add_argument("--links-file", type=_links_file, metavar="FILE",
                        help='named links as JSON: {"NAME": {"listen": ..., "upstream": ...}}')
    parser.add_argument("--control", default=("127.0.0.1", 0), type=_listen_argument,
                        help="address for control commands (default 127.0.0.1:0)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log connections and commands on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    named = list(args.link) + list(args.links_file or [])
    if named and (args.listen or args.upstream):
        parser.error("use either --listen/--upstream or --link/--links-file, not both")
    if not named and not (args.listen and args.upstream):
        parser.error("the following arguments are required: --listen, --upstream "
                     "(or named links with --link NAME=LISTEN,UPSTREAM)")
    names = [name for name, _, _ in named]
    if len(set(names)) != len(names):
        parser.error("link names must be unique")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s fault_proxy %(levelname)s %(message)s")
    if named:
        proxy = ProxyGroup({name: (listen, upstream) for name, listen, upstream in named})
    else:
        proxy = FaultProxy(args.listen, args.upstream)
    try:
        proxy.open(args.control)
    except OSError as exc:
        proxy.close()
        link = getattr(exc, "link", None)
        if link is not None:
            listen = format_address(proxy.links[link].listen_address)
            print(f"fault_proxy: cannot listen on {listen} for link {link} ({exc.strerror}); "
                  "pick another port for it, or port 0", file=sys.stderr)
        else:
            where = (format_address(args.control) if named else
                     f"{format_address(args.listen)} and {format_address(args.control)}")
            print(f"fault_proxy: cannot listen on {where} ({exc.strerror}); pick other ports "
                  "for --listen and --control, or port 0", file=sys.stderr)
        return EX_OSERR
    stop = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    ready = {"control": format_address(proxy.control_listener.getsockname()),
             "pid": os.getpid()}
    if named:
        ready["links"] = {name: format_address(link.listen_address)
                          for name, link in proxy.links.items()}
    else:
        ready["listen"] = format_address(proxy.listen_address)
    print(json.dumps(ready), flush=True)
    stop.wait()
    proxy.close()
    return 0


# --- Python API for tests and the lab (plain blocking sockets; no gevent needed)


class FaultProxyError(RuntimeError):
    """The proxy process did not start."""


def child_env() -> dict[str, str]:
    """This process's environment, in which a ``python -m pymc...`` child runs the same pymc
    as this process, installed or not."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def control(address: str, command: str, timeout: float = 5.0) -> str:
    """Send one control command to the proxy at ``address``; its reply line, no newline."""
    if "\n" in command:
        raise ValueError(f"one command per call, got {command!r}")
    with socket.create_connection(parse_address(address), timeout=timeout) as sock:
        sock.sendall(command.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(MAX_CONTROL_LINE)
            if not chunk:
                raise ConnectionError(f"fault proxy {address} closed without replying to "
                                      f"{command!r}")
            reply += chunk
    return reply.decode().rstrip("\r\n")


def control_many(address: str, commands: list[str], timeout: float = 5.0) -> list[str]:
    """Several commands over one control connection; their reply lines, in order."""
    if any("\n" in command for command in commands):
        raise ValueError("one command per item")
    if not commands:
        return []
    with socket.create_connection(parse_address(address), timeout=timeout) as sock:
        sock.sendall(b"".join(command.encode() + b"\n" for command in commands))
        data = b""
        while data.count(b"\n") < len(commands):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"fault proxy {address} closed before answering "
                                      f"all {len(commands)} commands")
            data += chunk
    return [line.decode().rstrip("\r") for line in data.split(b"\n")[:len(commands)]]


class FaultProxyProcess:
    """``python -m pymc.lab.fault_proxy`` as a child process, in front of ``upstream``; or,
    with ``links`` ({name: upstream}, each listening on a free port), a group of named links
    whose addresses are in ``self.links`` once started."""

    def __init__(self, upstream: str = "", listen: str = "127.0.0.1:0",
                 control_listen: str = "127.0.0.1:0", start_timeout: float = 10.0,
                 links: dict[str, str] | None = None) -> None:
        self.upstream = upstream or ", ".join((links or {}).values())
        self.argv = [sys.executable, "-m", "pymc.lab.fault_proxy", "--control", control_listen]
        if links:
            for name, target in links.items():
                self.argv += ["--link", f"{name}={listen},{target}"]
        else:
            self.argv += ["--listen", listen, "--upstream", upstream]
        self.links: dict[str, str] = {}
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.address = self.control_address = ""
        self.port = 0
        self.pid = 0
        self._stderr = None

    def start(self) -> "FaultProxyProcess":
        # stderr goes to a file: a pipe nobody reads would block a chatty proxy (-v).
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL, env=child_env())
        ready = json.loads(self._ready_line())
        self.control_address, self.pid = ready["control"], ready["pid"]
        self.links = ready.get("links", {})
        self.address = ready.get("listen") or next(iter(self.links.values()))
        self.port = parse_address(self.address)[1]
        return self

    def _ready_line(self) -> bytes:
        deadline = time.monotonic() + self.start_timeout
        fd = self.proc.stdout.fileno()
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"did not report ready within {self.start_timeout:g} s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    self._fail("exited before it was ready")
                line += chunk
        return line

    def _fail(self, why: str) -> None:
        stop_process(self.proc)
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace").strip()
        self.stop()
        raise FaultProxyError(f"fault proxy for {self.upstream} {why} (exit status "
                              f"{self.proc.returncode}): {stderr or 'no output on stderr'}")

    def command(self, command: str, timeout: float = 5.0) -> str:
        return control(self.control_address, command, timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after 5 s; safe to call twice."""
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> "FaultProxyProcess":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
