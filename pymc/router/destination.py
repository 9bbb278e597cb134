"""One backend server: a persistent connection, requests pipelined on it, replies matched in
order, connect and server timeouts, per-server counters. Only this module and the proxy shell
touch sockets.

Driven by callbacks on the gevent hub's loop, like the server: requests queued during one loop
turn go out in one ``send`` (flushed by ``loop.run_callback``), and one read answers every
complete reply. memcached answers in order, so the oldest waiting request owns the next reply.
A request still unanswered after ``timeout_ms`` gets a ``timeout`` reply but keeps its place
in the queue (as mcrouter's AsyncMcClient does): its late reply is read and dropped, and the
requests behind it keep their own deadlines, so a slow reply costs one request, not the
connection. Losing the connection (reset, end of stream, garbage) fails what is in flight with
``remote_error`` and makes the server hard TKO, as mcrouter's onDown handler does.

TKO (see tko.py): while the server's tracker says TKO nothing is sent, every request gets
mcrouter's ``SERVER_ERROR Server unavailable. Reason: mc_res_<why>``, and the destination that
marked it probes with ``version`` until a good answer ends it. Everything queued for a server
is bounded: at most ``max_pending`` requests wait for replies and ``MAX_UNSENT`` bytes wait to
be written; beyond that requests fail at once with ``local_error`` instead of growing memory
while a backend hangs.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
from collections import deque
from dataclasses import dataclass

from ..sockets import receive
from ..protocol.client import RAW_SINGLE_GET, ClientConnection
from ..protocol.messages import NEED_DATA, ProtocolViolation, Request
from ..protocol.meta import MetaReply, MetaRequest
from .access_point import AccessPoint
from .results import LINE_RESULTS, META_RESULTS, ErrorReply, result_of
from .tko import ProbeBackoff, TkoTracker

logger = logging.getLogger(__name__)


NEW, CONNECTING, UP, CLOSED = "new", "connecting", "up", "closed"

#: Bytes of requests a destination holds while the server does not read them.
MAX_UNSENT = 64 * 1024 * 1024
_PROBE = Request(b"version", [])


def _late_reply(reply) -> None:
    """The reply to a request that already got ``timeout``: read and dropped."""


@dataclass
class DestinationPolicy:
    """How a destination treats failures (from the router's options)."""
    probe_initial_ms: int = 10000
    probe_max_ms: int = 60000
    tko_enabled: bool = True
    max_pending: int = 100000


#: Reply words (and meta codes) as mcrouter's result names, for ``stats servers``: counted by
#: word on the reply path, named when read. A get is counted as b"VALUE" when it had hits, and
#: HD as "ok" (what it meant depends on the request, which is not kept).
_WORD_RESULTS = {**LINE_RESULTS, **META_RESULTS,
                 b"VALUE": "found", b"END": "notfound", b"HD": "ok"}


class DestinationStats:
    __slots__ = ("counts", "latency_total", "latency_count", "sent", "failures", "probes_sent",
                 "late_replies")

    def __init__(self) -> None:
        #: replies by reply word (b"VALUE" for a get with hits) or router error kind
        self.counts: dict = {}
        self.latency_total = 0.0
        self.latency_count = 0
        self.sent = 0
        self.failures = 0
        self.probes_sent = 0
        self.late_replies = 0

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
                 connect_timeout_ms: int | None = None, tracker: TkoTracker | None = None,
                 policy: DestinationPolicy | None = None) -> None:
        self.access_point = access_point
        self.loop = loop
        self.timeout = timeout_ms / 1000.0
        self.connect_timeout = (connect_timeout_ms if connect_timeout_ms is not None
                                else timeout_ms) / 1000.0
        self.set_policy(policy or DestinationPolicy())
        self.tko = tracker or TkoTracker(str(access_point), 3, loop.now)
        self.tko.listeners.append(self)
        self.state = NEW
        #: UP and not TKO: requests may go straight out (the hot path's one check)
        self.ready = False
        self.sock: socket.socket | None = None
        self.parser = ClientConnection()
        #: (done, deadline, request) per request awaiting its reply, oldest first; the first
        #: ``expired`` of them already got ``timeout`` and only wait for their late reply.
        self.waiting: deque = deque()
        self.expired = 0
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.unsent = b""
        self.flush_scheduled = False
        self.retiring = False
        self.stats = DestinationStats()
        #: The server answers the meta protocol, so RawGets can be framed (see RawGet).
        self.frames = False
        self._token = random.getrandbits(62) | 1 << 62
        self._reader = self._writer = self._timer = None
        self._timer_at = 0.0
        self._probe_timer = None
        self._probe_backoff: ProbeBackoff | None = None
        self._probe_inflight = False
        # one bound method each, compared by identity: their failures are not the
        # server's requests failing, so TKO accounting skips them
        self._probe_done = self._on_probe_reply
        self._meta_done = self._on_meta_probe
        self._refresh()

    # -- public -------------------------------------------------------------------------------

    def send(self, req, done) -> None:
        if self.tko.state is not None:
            self._unavailable((done,))
        elif self._admit((done,)):
            self._send_now(req, done)

    def forward(self, wire: bytes, expected: list, dones: list) -> None:
        """Send ``wire``, requests the caller wrote itself (a client's get lines as they came,
        a framed get); ``expected[i]`` says how to parse the i-th reply (see RawGet) and
        ``dones[i]`` gets it."""
        if self.tko.state is not None:
            self._unavailable(dones)
        elif self._admit(dones) and self._connected(dones):
            self.parser.expect(expected)
            now = self.loop.now()
            deadline = now + self.timeout
            self.waiting.extend([(done, deadline, None) for done in dones])
            self._queued(wire, len(dones), now)

    def send_get(self, line: bytes, done) -> None:
        """forward() of one client ``get <key>`` line, the hot path, kept lean."""
        if not self.ready or len(self.waiting) >= self.max_pending:
            self.forward(line, [RAW_SINGLE_GET], [done])
            return
        self.parser.expect_single_get()
        now = self.loop.now()
        self.waiting.append((done, now + self.timeout, None))
        self._queued(line, 1, now)

    def set_policy(self, policy: DestinationPolicy) -> None:
        self.policy = policy
        self.max_pending = policy.max_pending  # read on the hot path

    def _send_now(self, req, done) -> None:
        if self._connected((done,)):
            wire = self.parser.send(req)
            now = self.loop.now()
            self.waiting.append((done, now + self.timeout, req))
            self._queued(wire, 1, now)

    def _admit(self, dones) -> bool:
        """False (every ``done`` answered ``local_error``) when the queues are full."""
        if len(self.waiting) + len(dones) > self.max_pending:
            why = f"Max pending requests ({self.max_pending})"
        elif self.out_bytes + len(self.unsent) > MAX_UNSENT:
            why = f"Max unsent bytes ({MAX_UNSENT})"
        else:
            return True
        self._fail(list(dones), ErrorReply(
            "local_error", f"{why} reached for destination \"{self.access_point}\"."),
            record=False)
        return False

    def _unavailable(self, dones) -> None:
        self._fail(list(dones), ErrorReply("tko", self.tko.unavailable_message()),
                   record=False)

    def _connected(self, dones) -> bool:
        """Connect if needed; False (every ``done`` answered) when refused at once."""
        if self.state is not UP and self.state is not CONNECTING:
            self._connect()
            if self.state is CLOSED:
                self._fail(list(dones), self._connect_failure)
                return False
        return True

    def _queued(self, wire: bytes, count: int, now: float) -> None:
        self.out.append(wire)
        self.out_bytes += len(wire)
        self.stats.sent += count
        if not self._timer.active:
            self._arm_timer(now + self.timeout)
        if not self.flush_scheduled and self.state is UP:
            self.flush_scheduled = True
            self.loop.run_callback(self._flush)

    def next_token(self) -> int:
        self._token += 1
        return self._token

    def _on_meta_probe(self, reply) -> None:
        self.frames = type(reply) is MetaReply and reply.code == b"MN"

    @property
    def pending(self) -> int:
        """Requests sent or queued and not yet answered (timed-out ones excluded)."""
        return len(self.waiting) - self.expired

    def close(self) -> None:
        """Leave the config now: fail what is queued with ``shutdown``."""
        self._leave_tko()
        self._fail_all(ErrorReply("shutdown"), record=False)
        self._teardown()

    def retire(self) -> None:
        """Left the config on a reload: close once the requests already sent are answered
        (or time out), so a reload never fails a request in flight."""
        self._leave_tko()
        self.retiring = True
        self._close_if_retired()

    def _close_if_retired(self) -> None:
        if self.retiring and self.pending == 0:
            self.close()

    def _leave_tko(self) -> None:
        """Stop probing; a TKO this destination was responsible for ends with it."""
        self._stop_probes()
        self.tko.forget(self)

    def __str__(self) -> str:
        return str(self.access_point)

    # -- TKO ------------------------------------------------------------------------------------

    def tko_changed(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        self.ready = self.state is UP and self.tko.state is None

    def _set_state(self, state: str) -> None:
        self.state = state
        self._refresh()

    def _record(self, result: str, probe: bool = False) -> None:
        if not self.policy.tko_enabled:
            return
        change = self.tko.record(result, self, probe)
        if change == "tko":
            logger.warning("%s marked %s TKO (%s)", self.access_point, self.tko.state,
                           result)
            self._start_probes()
        elif change == "up":
            logger.warning("%s is back: TKO cleared by a probe", self.access_point)
            self._stop_probes()

    def _start_probes(self) -> None:
        self._probe_backoff = ProbeBackoff(self.policy.probe_initial_ms,
                                           self.policy.probe_max_ms)
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        if self._probe_timer is not None:
            self._probe_timer.stop()
        self._probe_timer = self.loop.timer(self._probe_backoff.next_delay())
        self._probe_timer.start(self._on_probe_timer)

    def _stop_probes(self) -> None:
        if self._probe_timer is not None:
            self._probe_timer.stop()
            self._probe_timer = None
        self._probe_backoff = None

    def _on_probe_timer(self) -> None:
        if self.tko.owner is not self:
            self._stop_probes()
            return
        if not self._probe_inflight:
            self._probe_inflight = True
            self.stats.probes_sent += 1
            self._send_now(_PROBE, self._probe_done)
        self._schedule_probe()

    def _on_probe_reply(self, reply) -> None:
        self._probe_inflight = False
        self._record(result_of(reply), probe=True)

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
        self._set_state(CONNECTING)
        self.frames = False
        # Does it speak meta? ("mn" answers MN; an older memcached says ERROR.)
        wire = self.parser.send(MetaRequest(b"mn"))
        self.out.append(wire)
        self.out_bytes += len(wire)
        self.waiting.append((self._meta_done, self.loop.now() + self.timeout, None))
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
        self._set_state(UP)
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
        self._fail_all(self._connect_failure)
        self._record(kind)

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
            self.out_bytes = 0
        else:
            data = self.unsent
        if not data:
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._broken(str(exc))
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
                self._broken("connection closed or reset by the server")
            return
        parser = self.parser
        parser.receive_data(data)
        waiting = self.waiting
        stats = self.stats
        counts = stats.counts
        tko = self.tko
        now = self.loop.now()
        timeout = self.timeout
        try:
            while True:
                reply = parser.next_event()
                if reply is NEED_DATA:
                    break
                done, deadline, req = waiting.popleft()
                if self.expired:
                    self.expired -= 1
                    stats.late_replies += 1
                    continue
                stats.latency_total += now - (deadline - timeout)
                stats.latency_count += 1
                if type(reply) is MetaReply:
                    word = reply.code
                else:
                    word = reply.result
                    if word == b"END" and (reply.values or reply.number):
                        word = b"VALUE"
                counts[word] = counts.get(word, 0) + 1
                if tko.consecutive_failures and done is not self._probe_done:
                    self._record(result_of(reply, req))
                try:
                    done(reply)
                except Exception:  # noqa: BLE001 - the other waiting replies still go out
                    logger.exception("internal error handling a reply from %s",
                                     self.access_point)
        except ProtocolViolation as exc:
            self._broken(str(exc))
            return
        if self.retiring:
            self._close_if_retired()

    def _broken(self, why: str) -> None:
        """The connection is gone: what was in flight fails with ``remote_error`` and the
        server is hard TKO (``connect_error``), as in mcrouter."""
        logger.info("connection to %s lost: %s", self.access_point, why)
        self.stats.failures += 1
        self._teardown()
        self._fail_all(ErrorReply("remote_error"), record=False)
        self._record("connect_error")

    # -- timeouts --------------------------------------------------------------------------------

    def _arm_timer(self, at: float) -> None:
        if self._timer is not None and self._timer.active:
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
        waiting = self.waiting
        index = self.expired
        count = len(waiting)
        late = now + 0.0005
        dones = []
        while index < count and waiting[index][1] <= late:
            done, deadline, _ = waiting[index]
            dones.append(done)
            waiting[index] = (_late_reply, deadline, None)
            index += 1
        self.expired = index
        if index < count:
            self._arm_timer(waiting[index][1])
        if dones:
            logger.info("%s: %d request(s) timed out after %d ms", self.access_point,
                        len(dones), self.timeout * 1000)
            self.stats.failures += 1
            self._fail(dones, ErrorReply("timeout"))
            if self.retiring:
                self._close_if_retired()

    # -- teardown --------------------------------------------------------------------------------

    def _fail(self, dones: list, reply, record: bool = True) -> None:
        counts = self.stats.counts
        kind = reply.kind
        if dones:
            counts[kind] = counts.get(kind, 0) + len(dones)
        for done in dones:
            if record and done is not self._probe_done and done is not self._meta_done:
                self._record(kind)
            done(reply)

    def _fail_all(self, reply, record: bool = True) -> None:
        waiting, self.waiting = self.waiting, deque()
        expired, self.expired = self.expired, 0
        self.out.clear()
        self.out_bytes = 0
        self._fail([done for done, _, _ in list(waiting)[expired:]], reply, record)

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
        self.out_bytes = 0
        if self.state is not NEW:
            self._set_state(CLOSED)
