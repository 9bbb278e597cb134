"""One backend server: a persistent connection, requests pipelined on it, replies matched in
order, connect and server timeouts, per-server counters. Only this module and the proxy shell
touch sockets.

Driven by callbacks on the gevent hub's loop, like the server: requests queued during one loop
turn go out in one ``send`` (flushed by ``loop.run_callback``), and one read answers every
complete reply. memcached answers in order, so the oldest waiting request owns the next reply.
A request still unanswered after ``timeout_ms`` fails the whole connection: in the text
protocol nothing after a lost reply can be matched safely (mcrouter closes it too), so every
waiting request gets a ``timeout`` reply and the next request reconnects.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
from collections import deque

from ..sockets import receive
from ..protocol.client import RAW_SINGLE_GET, ClientConnection
from ..protocol.messages import NEED_DATA, ProtocolViolation
from .access_point import AccessPoint
from ..protocol.meta import MetaReply, MetaRequest
from .results import ErrorReply

logger = logging.getLogger(__name__)


NEW, CONNECTING, UP, CLOSED = "new", "connecting", "up", "closed"


#: Reply words (and meta codes) as mcrouter's result names, for ``stats servers``.
_WORD_RESULTS = {b"VALUE": "found", b"END": "notfound", b"STORED": "stored",
                 b"NOT_STORED": "notstored", b"EXISTS": "exists", b"NOT_FOUND": "notfound",
                 b"DELETED": "deleted", b"TOUCHED": "touched", b"OK": "ok", b"NUMBER": "stored",
                 b"VERSION": "ok", b"SERVER_ERROR": "remote_error",
                 b"CLIENT_ERROR": "client_error", b"ERROR": "remote_error", b"HD": "ok",
                 b"VA": "found", b"EN": "notfound", b"NF": "notfound", b"NS": "notstored",
                 b"EX": "exists", b"MN": "ok"}


class DestinationStats:
    __slots__ = ("counts", "latency_total", "latency_count", "sent", "failures")

    def __init__(self) -> None:
        #: replies by reply word (b"VALUE" for a get with hits) or router error kind
        self.counts: dict = {}
        self.latency_total = 0.0
        self.latency_count = 0
        self.sent = 0
        self.failures = 0

    @property
    def results(self) -> dict[str, int]:
        """Reply counts by mcrouter result name."""
        named: dict[str, int] = {}
        for word, count in self.counts.items():
            name = word if isinstance(word, str) else _WORD_RESULTS.get(word, "unknown")
            named[name] = named.get(name, 0) + count
        return named

    @property
    def avg_latency_us(self) -> float:
        return self.latency_total / self.latency_count * 1e6 if self.latency_count else 0.0


class Destination:
    """A backend at ``access_point``; ``send(req, done)`` calls ``done(reply)`` exactly once."""

    def __init__(self, access_point: AccessPoint, loop, timeout_ms: int = 1000,
                 connect_timeout_ms: int | None = None) -> None:
        self.access_point = access_point
        self.loop = loop
        self.timeout = timeout_ms / 1000.0
        self.connect_timeout = (connect_timeout_ms if connect_timeout_ms is not None
                                else timeout_ms) / 1000.0
        self.state = NEW
        self.sock: socket.socket | None = None
        self.parser = ClientConnection()
        #: (done, deadline, request) per request awaiting its reply, oldest first.
        self.waiting: deque = deque()
        self.out: list[bytes] = []
        self.unsent = b""
        self.flush_scheduled = False
        self.stats = DestinationStats()
        #: The server answers the meta protocol, so RawGets can be framed (see RawGet).
        self.frames = False
        self._token = random.getrandbits(62) | 1 << 62
        self._reader = self._writer = self._timer = None
        self._timer_at = 0.0

    # -- public -------------------------------------------------------------------------------

    def send(self, req, done) -> None:
        if self._connected((done,)):
            wire = self.parser.send(req)
            now = self.loop.now()
            self.waiting.append((done, now + self.timeout, req))
            self._queued(wire, 1, now)

    def forward(self, wire: bytes, expected: list, dones: list) -> None:
        """Send ``wire``, requests the caller wrote itself (a client's get lines as they came,
        a framed get); ``expected[i]`` says how to parse the i-th reply (see RawGet) and
        ``dones[i]`` gets it."""
        if self._connected(dones):
            self.parser.expect(expected)
            now = self.loop.now()
            deadline = now + self.timeout
            self.waiting.extend([(done, deadline, None) for done in dones])
            self._queued(wire, len(dones), now)

    def send_get(self, line: bytes, done) -> None:
        """forward() of one client ``get <key>`` line, the hot path, kept lean."""
        if self.state is not UP:
            self.forward(line, [RAW_SINGLE_GET], [done])
            return
        self.parser.expect((RAW_SINGLE_GET,))
        now = self.loop.now()
        self.waiting.append((done, now + self.timeout, None))
        self._queued(line, 1, now)

    def _connected(self, dones) -> bool:
        """Connect if needed; False (every ``done`` answered) when refused at once."""
        if self.state is not UP and self.state is not CONNECTING:
            self._connect()
            if self.state is CLOSED:
                for done in dones:
                    done(self._connect_failure)
                return False
        return True

    def _queued(self, wire: bytes, count: int, now: float) -> None:
        self.out.append(wire)
        self.stats.sent += count
        if not self._timer.active:
            self._arm_timer(now + self.timeout)
        if not self.flush_scheduled and self.state is UP:
            self.flush_scheduled = True
            self.loop.run_callback(self._flush)

    def next_token(self) -> int:
        self._token += 1
        return self._token

    def _on_probe(self, reply) -> None:
        self.frames = type(reply) is MetaReply and reply.code == b"MN"

    @property
    def pending(self) -> int:
        return len(self.waiting)

    def close(self) -> None:
        self._fail_all(ErrorReply("shutdown"))
        self._teardown()

    def __str__(self) -> str:
        return str(self.access_point)

    # -- connecting ------------------------------------------------------------------------------

    def _connect(self) -> None:
        ap = self.access_point
        self._teardown()
        self.parser = ClientConnection()
        try:
            if ap.unix:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                address: object = ap.host
            else:
                family = socket.AF_INET6 if ":" in ap.host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                address = (ap.host, ap.port)
            sock.setblocking(False)
            code = sock.connect_ex(address)
        except OSError as exc:
            self._connect_failed("connect_error", str(exc))
            return
        self.sock = sock
        if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
            self._connect_failed("connect_error", errno.errorcode.get(code, str(code)))
            return
        self.state = CONNECTING
        self.frames = False
        # Does it speak meta? ("mn" answers MN; an older memcached says ERROR.)
        self.out.append(self.parser.send(MetaRequest(b"mn")))
        self.waiting.append((self._on_probe, self.loop.now() + self.timeout, None))
        self._writer = self.loop.io(sock.fileno(), 2)
        self._writer.start(self._on_connected)
        self._arm_timer(self.loop.now() + self.connect_timeout)

    def _on_connected(self) -> None:
        sock = self.sock
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if sock else errno.EBADF
        self._writer.stop()
        if code:
            self._connect_failed("connect_error", errno.errorcode.get(code, str(code)))
            return
        self.state = UP
        self._reader = self.loop.io(sock.fileno(), 1)
        self._reader.start(self._on_readable)
        now = self.loop.now()
        # Requests queued while connecting get their full server timeout from now.
        self.waiting = deque((done, now + self.timeout, req) for done, _, req in self.waiting)
        self._arm_timer(now + self.timeout)
        self._flush()

    def _connect_failed(self, kind: str, why: str) -> None:
        logger.info("cannot connect to %s: %s", self.access_point, why)
        self._connect_failure = ErrorReply(kind)
        self._teardown()
        self.state = CLOSED
        self._fail_all(self._connect_failure)

    _connect_failure = ErrorReply("connect_error")

    # -- I/O ------------------------------------------------------------------------------------

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.state is not UP:
            return
        out = self.out
        if out:
            data = self.unsent + (out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        else:
            data = self.unsent
        if not data:
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._broken("remote_error", str(exc))
            return
        self.unsent = data[sent:]
        if self.unsent:
            self._writer = self._writer or self.loop.io(self.sock.fileno(), 2)
            self._writer.start(self._flush)
        elif self._writer is not None and self._writer.active:
            self._writer.stop()

    def _on_readable(self) -> None:
        data = receive(self.sock)
        if not data:
            if data is not None:
                self._broken("remote_error", "connection closed or reset by the server")
            return
        parser = self.parser
        parser.receive_data(data)
        waiting = self.waiting
        stats = self.stats
        counts = stats.counts
        now = self.loop.now()
        timeout = self.timeout
        try:
            while True:
                reply = parser.next_event()
                if reply is NEED_DATA:
                    break
                done, deadline, _ = waiting.popleft()
                stats.latency_total += now - (deadline - timeout)
                stats.latency_count += 1
                if type(reply) is MetaReply:
                    word = reply.code
                else:
                    word = reply.result
                    if word == b"END" and (reply.values or reply.number):
                        word = b"VALUE"
                counts[word] = counts.get(word, 0) + 1
                try:
                    done(reply)
                except Exception:  # noqa: BLE001 - the other waiting replies still go out
                    logger.exception("internal error handling a reply from %s",
                                     self.access_point)
        except ProtocolViolation as exc:
            self._broken("remote_error", str(exc))

    def _broken(self, kind: str, why: str) -> None:
        logger.info("connection to %s lost: %s", self.access_point, why)
        self.stats.failures += 1
        self._teardown()
        self.state = CLOSED
        self._fail_all(ErrorReply(kind))

    # -- timeouts --------------------------------------------------------------------------------

    def _arm_timer(self, at: float) -> None:
        if self._timer is None:
            self._timer = self.loop.timer(0.0)
        elif self._timer.active:
            if self._timer_at <= at:
                return
            self._timer.stop()
        self._timer_at = at
        delay = max(at - self.loop.now(), 0.0)
        self._timer = self.loop.timer(delay)
        self._timer.start(self._on_timer)

    def _on_timer(self) -> None:
        now = self.loop.now()
        if self.state is CONNECTING:
            if self._timer_at <= now:
                self._connect_failed("connect_timeout", "connect timed out")
            return
        if self.waiting:
            deadline = self.waiting[0][1]
            if deadline <= now + 0.0005:
                logger.info("%s: request timed out after %d ms", self.access_point,
                            self.timeout * 1000)
                self.stats.failures += 1
                self._teardown()
                self.state = CLOSED
                self._fail_all(ErrorReply("timeout"))
                return
            self._arm_timer(deadline)

    # -- teardown --------------------------------------------------------------------------------

    def _fail_all(self, reply) -> None:
        waiting, self.waiting = self.waiting, deque()
        self.out.clear()
        kind = reply.kind
        if waiting:
            self.stats.counts[kind] = self.stats.counts.get(kind, 0) + len(waiting)
        for done, _, _ in waiting:
            done(reply)

    def _teardown(self) -> None:
        for watcher in (self._reader, self._writer):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self._reader = self._writer = None
        if self._timer is not None:
            self._timer.stop()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        self.unsent = b""
        self.out.clear()
        if self.state is not NEW:
            self.state = CLOSED
