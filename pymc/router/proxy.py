"""The router's gevent shell for clients: accept, parse (the server's sans-IO parser, text and
meta), route each key through the config's root route, write replies in request order.

Callback-driven like the server (no greenlet per request): a read parses every complete
command, each key is routed, and replies are written when the oldest outstanding request has
its answer. Multi-gets are split per key (as mcrouter does) and reassembled; the first error
among the keys replaces END, as mcrouter's multi-op does. ``noreply`` and meta ``q`` are
handled here: backends always answer, the client just does not see what it asked not to see.
"""

from __future__ import annotations

import logging
import socket
from collections import deque

from ..sockets import receive
from ..protocol.connection import NEED_DATA, ServerConnection
from ..protocol.messages import ERROR, LF, Request
from ..protocol.meta import QUIET_NOMINAL, MetaReply, MetaRequest
from .gets import error_line, forward_get_line, forward_simple_gets, retrieve
from .ops import without_quiet
from .results import worst
from .routes.base import Gather, RouteHandle, ignore
from .routes.destination import DestinationRoute

logger = logging.getLogger(__name__)

#: Stop reading from a client with this many requests waiting for backends (bounded memory).
MAX_OUTSTANDING = 4096
_GETS = frozenset((b"get", b"gets", b"gat", b"gats"))


def reply_bytes(req, reply) -> bytes:
    """A non-get reply as the client expects it."""
    kind = type(reply)
    if kind is MetaReply:
        if reply.flags and type(req) is MetaRequest and req.has(b"k"):
            reply = MetaReply(reply.code, [b"k" + req.wire_key if t[:1] == b"k" else t
                                           for t in reply.flags], reply.value)
        return reply.to_bytes()
    if reply.result == b"NUMBER":
        return b"%d\r\n" % reply.number
    if reply.values and type(req) is MetaRequest:
        return b"SERVER_ERROR unexpected reply\r\n"
    return error_line(reply)


class ClientConn:
    __slots__ = ("proxy", "sock", "fd", "parser", "reader", "writer", "slots", "out",
                 "write_scheduled", "pending", "closing", "closed", "paused", "blocked", "peer",
                 "__weakref__")

    def __init__(self, proxy, sock: socket.socket, peer) -> None:
        self.proxy = proxy
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.parser = ServerConnection(max_value_length=proxy.max_value_length)
        loop = proxy.loop
        self.reader = loop.io(self.fd, 1)
        self.writer = loop.io(self.fd, 2)
        self.slots: deque = deque()  # [bytes | None] per request awaiting its reply, in order
        self.out: list[bytes] = []
        self.write_scheduled = False
        self.pending = b""  # accepted for sending, not yet taken by the kernel
        self.closing = False
        self.closed = False
        self.paused = False
        self.blocked = False
        self.reader.start(self.on_readable)

    # -- input -----------------------------------------------------------------------------------

    def on_readable(self) -> None:
        data = receive(self.sock)
        if not data:
            if data is not None:
                self.close()
            return
        try:
            if data[:4] == b"get " and not self.parser.buffered and \
                    len(self.slots) < MAX_OUTSTANDING:
                if data.count(LF) == 1 and data.endswith(b"\r\n"):
                    if forward_get_line(self.proxy, self, data):
                        return
                elif forward_simple_gets(self.proxy, self, data):
                    return
            self.parser.receive_data(data)
            self.process()
        except Exception:  # noqa: BLE001 - a bug must cost this connection, not hang it
            logger.exception("internal error on a client connection; closing it")
            self.close()

    def process(self) -> None:
        next_event = self.parser.next_event
        handlers = self.proxy.handlers
        other = self.proxy.handle_other
        while len(self.slots) < MAX_OUTSTANDING:
            event = next_event()
            if event is NEED_DATA:
                break
            if handlers.get(event.command, other)(self, event):
                self.closing = True
                self.reader.stop()
                break
        else:
            self.paused = True
            self.reader.stop()
        self.drain()

    # -- replies ---------------------------------------------------------------------------------

    def slot(self) -> list:
        slot = [None]
        self.slots.append(slot)
        return slot

    def fill(self, slot: list, data: bytes) -> None:
        slot[0] = data
        if self.slots and self.slots[0] is slot:
            self.drain()

    def drain(self) -> None:
        slots = self.slots
        out = self.out
        while slots and slots[0][0] is not None:
            out.append(slots.popleft()[0])
        if out and not self.write_scheduled and not self.closed:
            if slots or self.pending:
                # more replies may join this write later in the loop turn
                self.write_scheduled = True
                self.proxy.schedule_flush(self)
            else:
                self.flush()
        elif not out and not slots and self.closing and not self.pending:
            self.close()

    def flush(self) -> None:
        self.write_scheduled = False
        if self.closed:
            return
        out = self.out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            if self.pending:
                data = self.pending + data
        else:
            data = self.pending
        if data:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            self.pending = data[sent:] if sent < len(data) else b""
        if self.pending:
            if not self.blocked:  # the peer is not reading: stop taking its requests
                self.blocked = True
                self.reader.stop()
                self.writer.start(self.flush)
            return
        if self.blocked:
            self.blocked = False
            self.writer.stop()
            if not self.paused and not self.closing:
                self.reader.start(self.on_readable)
        if self.closing:
            if not self.slots:
                self.close()
            return
        if self.paused and len(self.slots) < MAX_OUTSTANDING // 2:
            self.paused = False
            self.reader.start(self.on_readable)
            self.process()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for watcher in (self.reader, self.writer):
            watcher.stop()
            watcher.close()
        try:
            self.sock.close()
        except OSError:
            pass
        self.proxy.forget(self)


class Handlers:
    """Request handlers by command; each returns True when the connection must close."""

    def __init__(self, proxy) -> None:
        self.proxy = proxy
        self.counter = proxy.stats

    def table(self) -> dict:
        table = {}
        for command in _GETS:
            table[command] = self.get
        for command in (b"set", b"add", b"replace", b"append", b"prepend", b"cas",
                        b"delete", b"incr", b"decr", b"touch"):
            table[command] = self.keyed
        for command in (b"mg", b"ms", b"md", b"ma", b"me"):
            table[command] = self.meta
        table[b"mn"] = self.meta_noop
        table[b"version"] = self.version
        table[b"quit"] = self.quit
        table[b"stats"] = self.stats
        table[b"flush_all"] = self.flush_all
        table[b"cache_memlimit"] = self.cache_memlimit
        table[b"verbosity"] = self.verbosity
        table[b"\x00invalid"] = self.invalid
        table[b"\x00close"] = self.quit
        return table

    def get(self, conn: ClientConn, req: Request) -> bool:
        self.counter.count(req.command, len(req.keys))
        retrieve(self.proxy, conn, req)
        return False

    def keyed(self, conn: ClientConn, req: Request) -> bool:
        self.counter.count(req.command, 1)
        if req.noreply:
            req.noreply = False  # the backend answers; the client does not hear it
            self.proxy.root.route(req, ignore)
            return False
        slot = conn.slot()

        def done(reply) -> None:
            conn.fill(slot, reply_bytes(req, reply))
        self.proxy.root.route(req, done)
        return False

    def meta(self, conn: ClientConn, req: MetaRequest) -> bool:
        self.counter.count(req.command, 1)
        quiet = req.quiet
        routed = without_quiet(req)
        slot = conn.slot()
        hidden = QUIET_NOMINAL.get(req.command) if quiet else None

        def done(reply) -> None:
            if type(reply) is MetaReply and reply.code == hidden:
                conn.fill(slot, b"")
            else:
                conn.fill(slot, reply_bytes(req, reply))
        self.proxy.root.route(routed, done)
        return False

    def meta_noop(self, conn: ClientConn, req) -> bool:
        conn.fill(conn.slot(), b"MN\r\n")
        return False

    def version(self, conn: ClientConn, req) -> bool:
        conn.fill(conn.slot(), b"VERSION %s\r\n" % self.proxy.version.encode())
        return False

    def quit(self, conn: ClientConn, req) -> bool:
        return True

    def verbosity(self, conn: ClientConn, req) -> bool:
        if not req.noreply:
            conn.fill(conn.slot(), b"OK\r\n")
        return False

    def stats(self, conn: ClientConn, req) -> bool:
        conn.fill(conn.slot(), self.proxy.stats.reply(req.args))
        return False

    def flush_all(self, conn: ClientConn, req) -> bool:
        self.counter.count(b"flush_all", 1)
        if not self.proxy.options.enable_flush_cmd:
            if not req.noreply:
                conn.fill(conn.slot(), b"SERVER_ERROR Command disabled\r\n")
            return False
        args = tuple(a for a in req.args if a != b"noreply")
        return self.broadcast(conn, req, Request(b"flush_all", [], args=args))

    def cache_memlimit(self, conn: ClientConn, req) -> bool:
        return self.broadcast(conn, req, Request(b"cache_memlimit", [],
                                                 args=(b"%d" % req.delta,)))

    def broadcast(self, conn: ClientConn, req, forward: Request) -> bool:
        """A keyless command goes to every server the default route can reach; the worst
        reply wins. (mcrouter hashes the empty key and so flushes one server per pool: never
        what a user means.)"""
        slot = None if req.noreply else conn.slot()
        destinations = every_destination(self.proxy.root.default)
        if not destinations:
            if slot is not None:
                conn.fill(slot, b"OK\r\n")
            return False

        def finish(replies: list) -> None:
            if slot is not None:
                conn.fill(slot, reply_bytes(req, worst(replies)))
        gather = Gather(len(destinations), finish)
        for index, destination in enumerate(destinations):
            destination.send(forward, gather.slot(index))
        return False

    def invalid(self, conn: ClientConn, event) -> bool:
        if not event.noreply:
            conn.fill(conn.slot(), event.line)
        return False

    def other(self, conn: ClientConn, req) -> bool:
        conn.fill(conn.slot(), ERROR)
        return False


def every_destination(handle: RouteHandle) -> list:
    """Every backend below ``handle``, whatever a request would pick (for keyless commands)."""
    found: dict[int, object] = {}
    seen: set[int] = set()
    stack = [handle]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            if isinstance(node, DestinationRoute):
                found.setdefault(id(node.destination), node.destination)
            stack.extend(node.children)
    return list(found.values())
