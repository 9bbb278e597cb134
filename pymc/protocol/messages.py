"""Plain values that cross the protocol boundary: requests, parse failures, limits.

Requests are slotted and cheap to build: the server makes one per command on its hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Byte values for ``in`` tests on bytes: ``b"\0" in line`` first tries the needle as an int
#: and pays for a TypeError (8x slower on 3.11); use ``find`` for longer needles.
NUL, CR, LF, SPACE = 0, 13, 10, 32
MAX_KEY_LENGTH = 250
#: A line with no newline after this many bytes closes the connection (unless it is a get).
MAX_LINE_LENGTH = 2048
#: memcached tokenizes at most this many tokens (the last one keeps the rest of the line).
MAX_TOKENS = 24
#: Largest value length a storage command may announce (memcached: INT_MAX - 2).
MAX_VALUE_LENGTH = 2**31 - 1 - 2

#: Reply lines every command family shares.
ERROR = b"ERROR\r\n"
BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"

STORAGE_COMMANDS = frozenset((b"set", b"add", b"replace", b"append", b"prepend", b"cas"))


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: next_event() result when more bytes are needed.
NEED_DATA = _Marker("NEED_DATA")


class Request:
    """One parsed command.

    ``command`` is the wire name (``b"get"``); ``keys`` holds every key (one for single-key
    commands); ``args`` keeps the raw tokens after the command for admin commands.
    """

    __slots__ = ("command", "keys", "flags", "exptime", "data", "cas_unique", "delta",
                 "noreply", "args")

    def __init__(self, command: bytes, keys: list[bytes] | None = None, flags: int = 0,
                 exptime: int = 0, data: bytes | None = None, cas_unique: int = 0,
                 delta: int = 0, noreply: bool = False,
                 args: tuple[bytes, ...] | list[bytes] = ()) -> None:
        self.command = command
        self.keys = keys if keys is not None else []
        self.flags = flags
        self.exptime = exptime
        self.data = data
        self.cas_unique = cas_unique
        self.delta = delta
        self.noreply = noreply
        self.args = args

    @property
    def key(self) -> bytes:
        return self.keys[0]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__
                           if getattr(self, name) not in (None, 0, False, (), []))
        return f"Request({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)


class Invalid:
    """A command that failed to parse: the reply line memcached sends, and what else it does.

    ``unlink_key``: a too-large or unstorable ``set`` also removes the old value.
    ``drop_pending``: memcached drops replies still queued from the same read (get with a key
    over 250 bytes). ``store_failure``: "too_large" or "bad_chunk", for stats; ``request``:
    the storage request whose data block was bad.
    """

    __slots__ = ("line", "noreply", "unlink_key", "drop_pending", "store_failure", "request")
    #: Not a wire command: lets a dispatcher route every event through one table.
    command = b"\x00invalid"

    def __init__(self, line: bytes, noreply: bool = False, unlink_key: bytes | None = None,
                 drop_pending: bool = False, store_failure: str | None = None,
                 request=None) -> None:
        self.request = request
        self.line = line
        self.noreply = noreply
        self.unlink_key = unlink_key
        self.drop_pending = drop_pending
        self.store_failure = store_failure

    def __repr__(self) -> str:
        return f"Invalid({self.line!r}, noreply={self.noreply})"


class Close:
    """The connection must be closed (quit, HTTP request, runaway line, binary protocol)."""

    __slots__ = ("reason",)
    command = b"\x00close"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Close({self.reason!r})"


class StorageHeader:
    """A storage command line whose data block (``length`` bytes + CRLF) must follow.

    ``refusal``: the command is already known to fail; the block is skipped, then the
    refusal is the event (memcached's "swallow").
    """

    __slots__ = ("request", "length", "refusal")

    def __init__(self, request, length: int, refusal: Invalid | None = None) -> None:
        self.request = request
        self.length = length
        self.refusal = refusal


class ProtocolViolation(Exception):
    """The peer sent bytes that are not a valid reply (a broken or foreign server)."""


class Value:
    """One ``VALUE`` of a retrieval reply."""

    __slots__ = ("key", "flags", "data", "cas")

    def __init__(self, key: bytes, flags: int, data: bytes, cas: int | None = None) -> None:
        self.key = key
        self.flags = flags
        self.data = data
        self.cas = cas

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and (self.key, self.flags, self.data, self.cas) == (
            other.key, other.flags, other.data, other.cas)

    def __repr__(self) -> str:
        return f"Value({self.key!r}, {self.flags}, {self.data!r}, {self.cas})"


class Reply:
    """One reply. ``result`` is the reply's first word (``b"STORED"``, ``b"END"`` for
    retrievals and stats, ``b"NUMBER"`` for incr/decr, ``b"SERVER_ERROR"``, ...)."""

    __slots__ = ("result", "message", "values", "stats", "number", "raw")

    def __init__(self, result: bytes, message: bytes = b"", values: Sequence = (),
                 stats: Sequence = (), number: int | None = None,
                 raw: bytes | None = None) -> None:
        self.result = result
        self.message = message
        self.values = values
        self.stats = stats
        self.number = number
        #: A RawGet's reply as it came (VALUE blocks and END); ``number`` counts the hits.
        self.raw = raw

    @property
    def is_error(self) -> bool:
        return self.result in (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")

    def __repr__(self) -> str:
        extra = self.message or self.values or self.stats or self.number
        return f"Reply({self.result!r}, {extra!r})"
