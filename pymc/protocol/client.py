"""ClientConnection: the client side of a memcached text connection, without I/O.

``send(request)`` returns the bytes to write and remembers what reply shape to expect;
``receive_data(bytes)`` buffers; ``next_event()`` returns one Reply (MetaReply for meta
commands) per request that expects one, in order (memcached answers in order), or NEED_DATA.
The router forwards over this.

Quiet meta requests (q) may get no reply at all. A quiet request's nominal reply is taken as
suppressed (a MetaReply with ``suppressed=True``) once the next reply visibly belongs to a later
request: an MN, a classic reply, a code the request cannot produce, or a meta reply without
the opaque (O) or key (k) the request asked to get back. Pipelines of quiet requests should
therefore end with ``mn`` and carry O or k, as memcached's protocol.txt recommends.
"""

from __future__ import annotations

from collections import deque
from functools import partial

from .messages import NEED_DATA, STORAGE_COMMANDS, ProtocolViolation, Reply, Request, Value
from .meta import QUIET_NOMINAL, REPLY_CODES, MetaReply, MetaRequest, parse_reply_line

#: Single-line results by their first word.
_LINE_RESULTS = frozenset((
    b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND", b"DELETED", b"TOUCHED", b"OK",
    b"RESET", b"END", b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR", b"VERSION", b"BUSY",
    b"BADCLASS", b"NOSPARE", b"NOTFULL", b"UNSAFE", b"SAME", b"MEMLIMIT_TOO_SMALL",
    b"MEMLIMIT_ADJUST_FAILED", b"NOTSTARTED", b"ERROR:", b"MN",
))
_MULTI_LINE = frozenset((b"get", b"gets", b"gat", b"gats", b"bget", b"stats"))


_ERRORS = frozenset((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"))
#: The reply codes each meta command can produce.
_POSSIBLE = {b"mg": (b"HD", b"VA", b"EN"), b"ms": (b"HD", b"NS", b"EX", b"NF"),
             b"md": (b"HD", b"NF", b"EX"), b"ma": (b"HD", b"VA", b"NF", b"NS", b"EX")}


def serialize_request(req: Request | MetaRequest) -> bytes:
    """The wire form of a request (memcached's text protocol)."""
    if type(req) is MetaRequest:
        return req.to_bytes()
    command = req.command
    tail = b" noreply" if req.noreply else b""
    if command in STORAGE_COMMANDS:
        data = req.data or b""
        cas = b" %d" % req.cas_unique if command == b"cas" else b""
        return b"%s %s %d %d %d%s%s\r\n%s\r\n" % (command, req.keys[0], req.flags, req.exptime,
                                                   len(data), cas, tail, data)
    if command in (b"get", b"gets", b"bget"):
        return command + b" " + b" ".join(req.keys) + b"\r\n"
    if command in (b"gat", b"gats"):
        return b"%s %d %s\r\n" % (command, req.exptime, b" ".join(req.keys))
    if command in (b"incr", b"decr"):
        return b"%s %s %d%s\r\n" % (command, req.keys[0], req.delta, tail)
    if command == b"touch":
        return b"touch %s %d%s\r\n" % (req.keys[0], req.exptime, tail)
    if command == b"delete":
        return b"delete %s%s\r\n" % (req.keys[0], tail)
    parts = [command, *req.keys, *req.args]
    return b" ".join(parts) + tail + b"\r\n"


#: The key of the framing request that follows a framed RawGet (see RawGet).
SENTINEL_KEY = b"__pymc_frame"


class RawGet(Request):
    """A get/gets whose reply is wanted as the bytes that came (a proxy forwarding it when
    the keys are unchanged): the reply is ``Reply(b"END", raw=..., number=hits)``, where
    ``number`` is 0 for no hits and otherwise the hits counted (at least 1), and no Value
    objects are made.

    With a ``token`` (an unguessable number) the get is followed on the wire by
    ``mg __pymc_frame O<token>``, and the reply's end is found with one search for that
    token's echo instead of stepping over every VALUE block: a server speaking the meta
    protocol (memcached >= 1.6) answers ``EN O<token>`` or ``HD O<token>`` right after it.
    """

    __slots__ = ("token",)

    def __init__(self, command: bytes, keys: list[bytes], token: int = 0) -> None:
        super().__init__(command, keys)
        self.token = token


def frame_request(token: int) -> bytes:
    """The request that frames a RawGet's reply: its answer echoes ``token``."""
    return b"mg %s O%d\r\n" % (SENTINEL_KEY, token)


#: The expectation for a forwarded single-key get line (see ClientConnection.expect).
RAW_SINGLE_GET = RawGet(b"get", [])


class ClientConnection:
    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._expecting: deque[Request | MetaRequest] = deque()
        self._values: list[Value] = []
        self._stats: list[tuple[bytes, bytes]] = []
        #: ``expect([RAW_SINGLE_GET])`` for the router's hot path, without a Python call.
        self.expect_single_get = partial(self._expecting.append, RAW_SINGLE_GET)

    @property
    def in_flight(self) -> int:
        """Requests sent whose replies have not been returned yet."""
        return len(self._expecting)

    def send(self, request: Request | MetaRequest) -> bytes:
        if not request.noreply:
            self._expecting.append(request)
        if type(request) is RawGet and request.token:
            return serialize_request(request) + frame_request(request.token)
        return serialize_request(request)

    def expect(self, requests) -> None:
        """Requests the caller wrote itself: their replies are parsed as these requests'
        (a RawGet, or RAW_SINGLE_GET for a forwarded ``get <key>`` line)."""
        self._expecting.extend(requests)

    def receive_data(self, data: bytes) -> None:
        if self._pos >= len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[self._pos:] + data
        self._pos = 0

    def next_event(self):
        expecting = self._expecting
        if expecting and type(expecting[0]) is RawGet and self._pos < len(self._buf):
            token = expecting[0].token
            return self._framed_get(self._pos, token) if token else self._raw_get(self._pos)
        while True:
            buf, pos = self._buf, self._pos
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return NEED_DATA
            line = buf[pos:eol]
            if not expecting:
                raise ProtocolViolation("reply with no request waiting: %r" % line[:80])
            request = expecting[0]
            kind = type(request)
            if kind is RawGet:
                if request.token:
                    return self._framed_get(pos, request.token)
                return self._raw_get(pos)
            if kind is MetaRequest:
                return self._meta_reply(request, line, eol)
            command = request.command
            if command in _MULTI_LINE:
                if line.startswith(b"VALUE "):
                    value = self._value(line, eol)
                    if value is None:
                        return NEED_DATA
                    self._values.append(value)
                    continue
                if line.startswith(b"STAT ") and command == b"stats":
                    _, name, rest = (line.split(b" ", 2) + [b""])[:3]
                    self._stats.append((name, rest))
                    self._pos = eol + 2
                    continue
            self._pos = eol + 2
            self._expecting.popleft()
            return self._reply(command, line)

    def _framed_get(self, start: int, token: int):
        buf = self._buf
        echo_line = b" O%d\r\n" % token
        echo = buf.find(echo_line, start)
        if echo < 0:
            return NEED_DATA
        line = buf.rfind(b"\r\n", start, echo) + 2
        if line == 1:
            line = start
        if buf[line:line + 3] not in (b"EN ", b"HD "):
            raise ProtocolViolation("bad framing reply: %r" % buf[line:echo + 20])
        self._pos = echo + len(echo_line)
        self._expecting.popleft()
        reply = buf[start:line]
        if reply.endswith(b"END\r\n") and (reply == b"END\r\n" or reply.startswith(b"VALUE ")):
            return Reply(b"END", raw=reply, number=0 if len(reply) == 5 else 1)
        # An error instead of values: the first line says which.
        return self._reply(b"get", reply[:reply.find(b"\r\n")])

    def _raw_get(self, start: int):
        """Skip over VALUE blocks to the END without parsing more than each length.
        (Replies are built with positional arguments: keywords cost 100 ns a call here.)"""
        buf = self._buf
        if buf.startswith(b"END\r\n", start):  # a miss, the commonest short answer
            self._pos = start + 5
            self._expecting.popleft()
            return Reply(b"END", b"", (), (), 0, b"END\r\n")
        size = len(buf)
        pos = start
        hits = 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return NEED_DATA
            if eol - pos == 3 and buf.startswith(b"END", pos):
                end = eol + 2
                self._pos = end
                self._expecting.popleft()
                return Reply(b"END", b"", (), (), hits, buf[start:end])
            if not buf.startswith(b"VALUE ", pos):
                if hits:
                    raise ProtocolViolation("bad VALUE line: %r" % buf[pos:eol][:80])
                self._pos = eol + 2
                self._expecting.popleft()
                return self._reply(b"get", buf[pos:eol])
            last = buf.rfind(b" ", pos, eol)
            third = buf.count(b" ", pos, eol)
            if third == 4:  # VALUE key flags bytes cas
                last = buf.rfind(b" ", pos, last)
                field = buf[last + 1:buf.find(b" ", last + 1)]
            elif third == 3:
                field = buf[last + 1:eol]
            else:
                field = b""
            if not field.isdigit():
                raise ProtocolViolation("bad VALUE line: %r" % buf[pos:eol][:80])
            pos = eol + 4 + int(field)
            if buf.startswith(b"\r\nEND\r\n", pos - 2):  # the last value: no line to find
                end = pos + 5
                self._pos = end
                self._expecting.popleft()
                return Reply(b"END", b"", (), (), hits + 1, buf[start:end])
            if pos > size:
                return NEED_DATA
            if buf[pos - 2:pos] != b"\r\n":
                raise ProtocolViolation("value not followed by CRLF")
            hits += 1

    def _meta_reply(self, meta: MetaRequest, line: bytes, eol: int):
        code, _, rest = line.partition(b" ")
        if meta.quiet and self._skipped(meta, code, line):
            self._expecting.popleft()
            return MetaReply(QUIET_NOMINAL[meta.command], suppressed=True)
        if code in _ERRORS:
            self._pos = eol + 2
            self._expecting.popleft()
            return Reply(code, message=rest)
        if code not in REPLY_CODES:
            raise ProtocolViolation("unexpected reply to %s: %r" % (meta.command.decode(),
                                                                  line[:80]))
        try:
            reply, length = parse_reply_line(line)
        except ValueError as exc:
            raise ProtocolViolation(str(exc)) from None
        end = eol + 2
        if length >= 0:
            if len(self._buf) < end + length + 2:
                return NEED_DATA
            if self._buf[end + length:end + length + 2] != b"\r\n":
                raise ProtocolViolation("value not followed by CRLF")
            reply.value = self._buf[end:end + length]
            end += length + 2
        self._pos = end
        self._expecting.popleft()
        return reply

    @staticmethod
    def _skipped(meta: MetaRequest, code: bytes, line: bytes) -> bool:
        """Does this reply belong to a request after the quiet one at the head?"""
        if code == b"MN":
            return meta.command != b"mn"
        if code in _ERRORS:
            return False
        if code not in _POSSIBLE.get(meta.command, REPLY_CODES) or \
                code == QUIET_NOMINAL[meta.command]:
            return True
        tokens = line.split(b" ")[1:]
        if meta.has(b"k") and b"k" + meta.wire_key not in tokens:
            return True
        opaque = meta.opaque
        return opaque is not None and b"O" + opaque not in tokens

    def _value(self, line: bytes, eol: int) -> Value | None:
        parts = line.split(b" ")
        if len(parts) not in (4, 5):
            raise ProtocolViolation("bad VALUE line: %r" % line[:80])
        length = int(parts[3])
        start = eol + 2
        if len(self._buf) < start + length + 2:
            return None
        data = self._buf[start:start + length]
        if self._buf[start + length:start + length + 2] != b"\r\n":
            raise ProtocolViolation("value not followed by CRLF")
        self._pos = start + length + 2
        cas = int(parts[4]) if len(parts) == 5 else None
        return Value(parts[1], int(parts[2]), data, cas)

    def _reply(self, command: bytes, line: bytes) -> Reply:
        word, _, rest = line.partition(b" ")
        if word == b"END" and command in _MULTI_LINE:
            values, self._values = self._values, []
            stats, self._stats = self._stats, []
            return Reply(b"END", values=values, stats=stats)
        if command in (b"incr", b"decr") and line.isdigit():
            return Reply(b"NUMBER", number=int(line))
        if word in _LINE_RESULTS:
            return Reply(word, message=rest)
        raise ProtocolViolation("unexpected reply to %s: %r" % (command.decode(), line[:80]))
