"""memcached's ``-vv`` lines on stderr: what tools and people watching a memcached expect.

memcached 1.6.18 at ``-vv`` prints its slab class table and one ``<fd server listening``
line per listener at start-up, then per connection ``<fd new auto-negotiating client
connection``, ``fd: Client using the ascii protocol``, every command line as ``<fd line``,
the one-line replies it sends with ``out_string`` as ``>fd REPLY`` (``>fd NOREPLY REPLY``
for noreply commands), ``>fd sending key K`` per hit and ``>fd END`` for gets, and
``<fd connection closed.``. Multi-line replies (stats, metadump) and the meta commands'
normal replies are not echoed; their errors, ``MN`` and ``me``'s ``EN`` are.

Nothing here runs at verbosity 0 or 1: the shell (``app.py``) calls in only when
``settings.verbosity > 1``, once per read, and then wraps the parser and the handlers of
that read, so the hot path is untouched otherwise. ``verbosity N`` takes effect at the next
read of every connection, as in memcached.
"""

from __future__ import annotations

import sys

from ..protocol.messages import BAD_FORMAT, MAX_KEY_LENGTH, Invalid, Request

GET_COMMANDS = frozenset((b"get", b"bget", b"gets", b"gat", b"gats"))
META_COMMANDS = frozenset((b"mg", b"ms", b"md", b"ma", b"me", b"mn"))
ERROR_PREFIXES = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")
END = b"END\r\n"
PROTOCOL_NAMES = {"auto": "auto-negotiate", "ascii": "ascii", "binary": "binary"}


def emit(data: bytes) -> None:
    """Write raw bytes (keys may be any bytes) to stderr, unbuffered like memcached's."""
    stream = sys.stderr
    raw = getattr(stream, "buffer", None)
    try:
        if raw is None:
            stream.write(data.decode("latin-1"))
            stream.flush()
        else:
            stream.flush()
            raw.write(data)
            raw.flush()
    except (OSError, ValueError):  # stderr closed or gone (a detached daemon): say nothing
        pass


# -- start-up ---------------------------------------------------------------------------------

def slab_table(slabs) -> list[str]:
    """memcached's slabs_init lines, from our own slab classes."""
    return ["slab class %3d: chunk size %9u perslab %7u" % (cls.id, cls.chunk_size, cls.per_page)
            for cls in slabs.classes[1:] if cls is not None]


def before_listen(server) -> None:
    lines = slab_table(server.cache.slabs)
    if server.settings.verbosity > 2:
        lines.append("Starting LRU crawler background thread")
    emit("".join(line + "\n" for line in lines).encode())


def after_listen(server) -> None:
    name = PROTOCOL_NAMES[server.settings.protocol]
    lines = ["<%d server listening (%s)" % (acceptor.sock.fileno(), name)
             for acceptor in server.listeners]
    if server.settings.verbosity > 2:
        lines.append("Starting LRU maintainer background thread")
    emit("".join(line + "\n" for line in lines).encode())


# -- connections ------------------------------------------------------------------------------

def new_connection(fd: int, protocol: str) -> None:
    if protocol == "auto":
        emit(b"<%d new auto-negotiating client connection\n" % fd)
    else:  # memcached's wording, trailing dot included
        emit(b"<%d new %s client connection.\n" % (fd, protocol.encode()))


def negotiated(fd: int) -> None:
    emit(b"%d: Client using the ascii protocol\n" % fd)


def closed(fd: int) -> None:
    emit(b"<%d connection closed.\n" % fd)


def exiting(graceful: bool, verbosity: int) -> None:
    """memcached's last words: always for a graceful stop (SIGUSR1), at -v for SIGINT/TERM."""
    if graceful:
        emit(b"Gracefully stopping\n")
    elif verbosity > 0:
        emit(b"Exiting normally\n")


# -- commands ---------------------------------------------------------------------------------

def wrap(conn, next_event, handlers):
    """(next_event, handlers) for one read of ``conn``, logging like memcached -vv."""
    log = _CommandLog(conn, next_event, handlers)
    return log.next_event, log


class _CommandLog:
    __slots__ = ("conn", "fd", "parser", "_next_event", "handlers")

    def __init__(self, conn, next_event, handlers) -> None:
        self.conn = conn
        self.fd = conn.fd
        self.parser = conn.parser
        self._next_event = next_event
        self.handlers = handlers

    def next_event(self):
        parser = self.parser
        line = None
        # A command line is about to be consumed when the parser is not inside a data block,
        # an authentication exchange or a closed state and a whole line is buffered.
        if (parser._header is None and parser._chunks is None and parser.authenticated
                and not parser.closed):
            buf, pos = parser._buf, parser._pos
            eol = buf.find(b"\n", pos)
            if eol >= 0:
                end = eol - 1 if eol - pos > 1 and buf[eol - 1] == 13 else eol
                line = buf[pos:end]
        event = self._next_event()
        if line is not None:
            # memcached prints the line when it parses it, before any data block arrives.
            emit(b"<%d %s\n" % (self.fd, line))
        return event

    def __getitem__(self, command):
        handler = self.handlers[command]
        return lambda event, out, conn: self.call(handler, event, out, conn)

    def call(self, handler, event, out: list, conn) -> bool:
        kind = type(event)
        noreply = (kind is Request or kind is Invalid) and event.noreply
        if noreply:
            # Let the handler build the reply it would send, log it as NOREPLY, drop it.
            event.noreply = False
        start = len(out)
        expected_cas = None
        if kind is Request and event.command == b"cas":
            expected_cas = _current_cas(conn.server.cache, event.keys[0])
        try:
            close = handler(event, out, conn)
        finally:
            if noreply:
                event.noreply = True
        if len(out) < start:  # the handler dropped the unsent replies queued before it
            start = conn.sent_mark
        reply = b"".join(out[start:])
        if noreply:
            del out[start:]
        if conn.server.settings.verbosity < 2:  # `verbosity 1` just turned logging off
            return close
        fd = self.fd
        lines = []
        if expected_cas is not None and reply == b"EXISTS\r\n":
            lines.append(b"CAS:  failure: expected %d, got %d\n"
                         % (expected_cas, event.cas_unique))
        prefix = b">%d NOREPLY " % fd if noreply else b">%d " % fd
        lines += [prefix + text + b"\n" for text in self.reply_lines(event, kind, reply)]
        if lines:
            emit(b"".join(lines))
        return close

    def reply_lines(self, event, kind, reply: bytes) -> list[bytes]:
        if not reply:
            return []
        command = event.command
        if kind is Request and command in GET_COMMANDS:
            if reply == BAD_FORMAT:
                return _stopped_get_lines(self.conn.server.cache, event.keys)
            return _get_lines(reply)
        if kind is Invalid:
            return [text for text in reply.split(b"\r\n") if text]
        if command == b"watch":
            return []  # memcached turns the connection into a log watcher instead
        if command in META_COMMANDS:
            if reply.startswith(ERROR_PREFIXES) or reply == b"MN\r\n" or (
                    command == b"me" and reply == b"EN\r\n"):
                return [reply[:-2]]
            return []
        if reply == END or reply.startswith(b"STAT ") or reply.count(b"\r\n") != 1:
            return []  # stats, dumps: memcached writes those without out_string
        return [reply[:-2]]


def _get_lines(reply: bytes) -> list[bytes]:
    lines = []
    pos = 0
    while reply.startswith(b"VALUE ", pos):
        eol = reply.index(b"\r\n", pos)
        header = reply[pos + 6:eol].split(b" ")
        lines.append(b"sending key " + header[0])
        pos = eol + 2 + int(header[2]) + 2
    rest = reply[pos:]
    if rest == END:
        lines.append(b"END")
    else:
        lines += [text for text in rest.split(b"\r\n") if text]
    return lines


def _stopped_get_lines(cache, keys: list[bytes]) -> list[bytes]:
    """memcached logs the hits before a key over 250 bytes, END, then the error. The hits are
    the keys before it still in the cache (a lookup removes what it finds expired)."""
    looked = next(i for i, key in enumerate(keys) if len(key) > MAX_KEY_LENGTH)
    index = cache.table.index
    return ([b"sending key " + key for key in keys[:looked] if key in index]
            + [b"END", BAD_FORMAT[:-2]])


def _current_cas(cache, key: bytes):
    """The CAS a ``cas`` will be compared with, read without touching stats or the LRU."""
    slot = cache.table.slot(key)
    return None if slot < 0 else cache.table.cas[slot]
