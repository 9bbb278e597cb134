"""ServerConnection: the server side of one memcached text connection, without I/O.

``receive_data(bytes)`` buffers, ``next_event()`` returns a Request, an Invalid, a Close or
NEED_DATA. Storage commands come back with their data attached. Memory per connection is
bounded: a line without a newline may not exceed MAX_LINE_LENGTH (except get/gets, as in
memcached), and a data block larger than ``max_value_length`` is skipped, not buffered.
"""

from __future__ import annotations

from .messages import (MAX_KEY_LENGTH, MAX_LINE_LENGTH, NEED_DATA, NUL, Close, Invalid,
                       Request, StorageHeader)
from .numbers import strtoul32
from .text import LINE_PARSERS, UNCHECKED_GET_PARSERS, parse_line

BAD_CHUNK = b"CLIENT_ERROR bad data chunk\r\n"
UNAUTHENTICATED = b"CLIENT_ERROR unauthenticated\r\n"
#: The request an ASCII-auth exchange becomes (not a wire command name).
AUTH_COMMAND = b"\x00auth"
TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
#: memcached lets a multi-get line grow without bound; we stop at 8 MB (about 32k full keys)
#: so that one client cannot take all memory.
MAX_MULTIGET_LINE = 8 * 1024 * 1024


class ServerConnection:
    __slots__ = ("_buf", "_pos", "_chunks", "_chunks_len", "_skip", "_header",
                 "max_value_length", "_parsers", "_check_get_keys", "authenticated", "_auth_length",
                 "closed")

    def __init__(self, max_value_length: int = 1024 * 1024, parsers: dict = LINE_PARSERS,
                 check_get_keys: bool = True) -> None:
        """``check_get_keys=False`` passes get/gets/gat/gats keys over 250 bytes through, for a
        server that refuses them as it looks the keys up, as memcached does."""
        self._buf = b""
        self._pos = 0
        self._chunks: list[bytes] | None = None  # gathering a large data block
        self._chunks_len = 0
        self._skip = 0                            # bytes of a refused data block still to drop
        self._header: StorageHeader | None = None  # storage line waiting for its data
        self.max_value_length = max_value_length
        self._parsers = parsers if check_get_keys else {**parsers, **UNCHECKED_GET_PARSERS}
        self._check_get_keys = check_get_keys
        #: False until an ASCII-auth "set" carrying "user pass" was accepted (-Y).
        self.authenticated = True
        self._auth_length = -1
        #: Set once a Close was returned: nothing more is parsed.
        self.closed = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed."""
        if self._chunks is not None:
            return self._chunks_len
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes) -> None:
        if self.closed:
            return
        if self._chunks is not None:
            self._chunks.append(data)
            self._chunks_len += len(data)
            return
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return
            data = data[self._skip:]
            self._skip = 0
        if self._pos >= len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[self._pos:] + data
        self._pos = 0

    def _gather(self, needed: int) -> bool:
        """True once ``needed`` bytes are contiguous in the buffer from the read position."""
        if self._chunks is not None:
            if self._chunks_len < needed:
                return False
            self._buf = b"".join(self._chunks)
            self._pos = 0
            self._chunks = None
            return True
        available = len(self._buf) - self._pos
        if available >= needed:
            return True
        # Switch to chunk gathering so a large block is joined once, not re-copied per read.
        self._chunks = [self._buf[self._pos:]]
        self._chunks_len = available
        self._buf = b""
        self._pos = 0
        return False

    def next_event(self):
        if self._header is not None or not self.authenticated or self.closed:
            return self._special_event()
        buf = self._buf
        pos = self._pos
        eol = buf.find(b"\n", pos)
        if eol < 0:
            if self._chunks is None and len(buf) - pos > MAX_LINE_LENGTH:
                return self._close(self._runaway_line(buf, pos))
            return NEED_DATA
        end = eol - 1 if eol - pos > 1 and buf[eol - 1] == 13 else eol
        self._pos = eol + 1
        line = buf[pos:end]
        parsed = _fast_path(line, self._check_get_keys)
        if parsed is None:
            parsed = parse_line(line, self._parsers)
        kind = type(parsed)
        if kind is Request or kind is Invalid:
            return parsed
        if kind is StorageHeader:
            if parsed.refusal is not None:
                self._skip_block(parsed.length + 2)
                return parsed.refusal
            if parsed.length > self.max_value_length:
                self._skip_block(parsed.length + 2)
                req = parsed.request
                # set (and ms in any mode) must not leave the old value behind.
                unlink = req.key if req.command in (b"set", b"ms") else None
                return Invalid(TOO_LARGE, req.noreply, unlink_key=unlink,
                               store_failure="too_large")
            self._header = parsed
            return self._finish_storage(parsed)
        return self._close(parsed)

    def _special_event(self):
        if self.closed:
            return NEED_DATA
        if not self.authenticated:
            return self._close(self._auth_event())
        return self._finish_storage(self._header)  # type: ignore[arg-type]

    def _close(self, event):
        """A Close ends the connection: nothing after it is parsed."""
        if type(event) is Close:
            self.closed = True
            self._buf = b""
            self._pos = 0
            self._chunks = None
        return event

    def _finish_storage(self, header: StorageHeader):
        length = header.length
        if not self._gather(length + 2):
            return NEED_DATA
        self._header = None
        buf = self._buf
        start = self._pos
        self._pos = start + length + 2
        request = header.request
        request.data = buf[start:start + length]
        if buf[start + length:start + length + 2] != b"\r\n":
            return Invalid(BAD_CHUNK, request.noreply, store_failure="bad_chunk",
                           request=request)
        return request

    def _auth_event(self):
        """memcached's ASCII auth: only ``set <any> <flags> <exptime> <n>`` + ``user pass``
        is understood; any other line gets ``CLIENT_ERROR unauthenticated``."""
        if self._auth_length < 0:
            buf, pos = self._buf, self._pos
            eol = buf.find(b"\n", pos)
            if eol < 0:
                if len(buf) - pos > MAX_LINE_LENGTH:
                    return Close("line too long")
                return NEED_DATA
            tokens = [t for t in buf[pos:eol].split(b" ") if t]
            self._pos = eol + 1
            length = strtoul32(tokens[4]) if len(tokens) >= 5 else None
            if len(tokens) < 5 or tokens[0] != b"set" or length is None:
                return Invalid(UNAUTHENTICATED)
            self._auth_length = length + 2
        if not self._gather(self._auth_length):
            return NEED_DATA
        start = self._pos
        block = self._buf[start:start + self._auth_length]
        self._pos = start + self._auth_length
        self._auth_length = -1
        if not block.endswith(b"\r\n"):
            return Invalid(b"CLIENT_ERROR bad command line termination\r\n")
        words = [t for t in block[:-2].split(b" ") if t]
        if len(words) < 2:
            return Invalid(b"CLIENT_ERROR bad authentication token format\r\n")
        return Request(AUTH_COMMAND, args=(words[0], words[1]))

    def _skip_block(self, count: int) -> None:
        available = len(self._buf) - self._pos
        if available >= count:
            self._pos += count
        else:
            self._skip = count - available
            self._buf = b""
            self._pos = 0

    def _runaway_line(self, buf: bytes, pos: int):
        # memcached allows unbounded lines only for multi-gets (getset.t sends 128 KB of keys).
        start = buf[pos:pos + 200]
        head = start.lstrip(b" ")
        if (len(start) - len(head) <= 100 and len(buf) - pos <= MAX_MULTIGET_LINE
                and (head.startswith(b"get ") or head.startswith(b"gets "))):
            return NEED_DATA
        return Close("line too long")


def _fast_path(line: bytes, check_keys: bool):
    """The two commonest lines, parsed without the general tokenizer: ``get <keys>`` and a plain
    ``set <key> <flags> <exptime> <bytes>``. Anything unusual returns None (general parser)."""
    head = line[:4]
    if head == b"get ":
        keys = line[4:].split(b" ")
        if b"" not in keys and NUL not in line and (
                not check_keys or len(line) <= MAX_KEY_LENGTH + 4
                or max(map(len, keys)) <= MAX_KEY_LENGTH):
            return Request(b"get", keys)
    elif head == b"set ":
        parts = line.split(b" ")
        if (len(parts) == 5 and 0 < len(parts[1]) <= MAX_KEY_LENGTH and NUL not in line
                and parts[2].isdigit() and parts[3].isdigit() and parts[4].isdigit()
                and len(parts[2]) < 10 and len(parts[3]) < 10 and len(parts[4]) < 10):
            return StorageHeader(Request(b"set", [parts[1]], int(parts[2]), int(parts[3])),
                                 int(parts[4]))
    return None


def is_binary_protocol(first_bytes: bytes) -> bool:
    """memcached picks the binary protocol when a connection's first byte is 0x80."""
    return first_bytes[:1] == b"\x80"


__all__ = ["ServerConnection", "NEED_DATA", "Request", "Invalid", "Close", "is_binary_protocol"]
