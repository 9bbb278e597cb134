"""Meta commands (mg ms md ma me mn), sans-IO, for both sides of a connection.

Server side: ``META_PARSERS`` turn the tokens of one line into a MetaRequest, an Invalid (with
memcached 1.6.18's error string, checked in memcached's order) or, for ms, a StorageHeader
whose data block follows. Client side: ``MetaRequest.to_bytes()`` and ``parse_reply_line()``.

Flags are kept as the raw tokens in request order (``b"T30"``, ``b"v"``), because replies
echo them in that order; the values memcached pre-parses are also decoded into attributes.
Like memcached, every command accepts every known flag and ignores the ones it has no use for.
"""

from __future__ import annotations

import base64
import binascii
import re

from .messages import BAD_FORMAT, ERROR, MAX_KEY_LENGTH, MAX_VALUE_LENGTH, Invalid, StorageHeader
from .numbers import strtol32, strtoul32, strtoull

META_COMMANDS = frozenset((b"mg", b"ms", b"md", b"ma", b"me", b"mn"))
#: Reply codes of meta commands (VA carries a data block).
REPLY_CODES = frozenset((b"HD", b"VA", b"EN", b"NF", b"NS", b"EX", b"MN", b"ME"))
#: The nominal reply a quiet (q) request leaves out; errors and other results still come.
QUIET_NOMINAL = {b"mg": b"EN", b"ms": b"HD", b"md": b"HD", b"ma": b"HD"}
MAX_OPAQUE_LENGTH = 32
#: memcached refuses a meta line of this many tokens or more (its count includes a terminator).
MAX_META_TOKENS = 20
#: Flags memcached 1.6.18 knows, plus E (explicit CAS) and x (md: drop value) from later
#: releases. Anything else is "invalid flag".
KNOWN_FLAGS = frozenset(b"bNTRlOPLkstcfvhuqFCMJDIEx")

DUPLICATE_FLAG = b"CLIENT_ERROR duplicate flag\r\n"
INVALID_FLAG = b"CLIENT_ERROR invalid flag\r\n"
INVALID_OR_DUPLICATE = b"CLIENT_ERROR invalid or duplicate flag\r\n"
BAD_TOKEN = b"CLIENT_ERROR bad token in command line format\r\n"
OPAQUE_TOO_LONG = b"CLIENT_ERROR opaque token too long\r\n"
DECODE_FAILED = b"CLIENT_ERROR error decoding key\r\n"
MG_TOO_MANY = b"CLIENT_ERROR options flags are too long\r\n"
TOO_MANY = b"CLIENT_ERROR options flags too long\r\n"
BAD_MS_MODE = b"CLIENT_ERROR invalid mode for ms M token\r\n"
BAD_MA_MODE = b"CLIENT_ERROR invalid mode for ma M token\r\n"

MS_MODES = {b"S": b"set", b"E": b"add", b"A": b"append", b"P": b"prepend", b"R": b"replace"}
MA_MODES = {b"I": True, b"+": True, b"D": False, b"-": False}


class MetaRequest:
    """One meta command. ``key`` is the key the cache uses (base64-decoded with ``b``);
    ``wire_key`` is the key as sent. ``tokens`` are the flag tokens in request order.

    Decoded flag values (None when the flag is absent): ``exptime`` (T), ``vivify`` (N),
    ``recache`` (R), ``cas`` (C), ``new_cas`` (E), ``mode`` (M, one byte); ``client_flags``
    (F), ``initial`` (J) and ``delta`` (D) default to 0, 0 and 1. ``bump_late``: a flag (h l N T R)
    needs the item's state from before the fetch, so mg moves it in the LRU last (memcached's
    "locked" fetch).
    """

    __slots__ = ("command", "key", "wire_key", "tokens", "data", "binary", "quiet", "value",
                 "no_update", "invalidate", "remove_value", "exptime", "vivify", "recache",
                 "cas", "new_cas", "mode", "client_flags", "initial", "delta", "bump_late")
    #: Meta commands never hide errors; ``quiet`` (q) hides only the nominal reply.
    noreply = False

    def __init__(self, command: bytes, key: bytes = b"", tokens: list[bytes] | tuple = (),
                 data: bytes | None = None) -> None:
        self.command = command
        self.key = key
        self.wire_key = key
        self.tokens = list(tokens)
        self.data = data
        self.binary = self.quiet = self.value = self.no_update = False
        self.invalidate = self.remove_value = self.bump_late = False
        self.exptime = self.vivify = self.recache = self.cas = self.new_cas = None
        self.mode: bytes | None = None
        self.client_flags = 0
        self.initial = 0
        self.delta = 1

    @property
    def opaque(self) -> bytes | None:
        """The O token's value, if any (clients match quiet replies with it)."""
        for token in self.tokens:
            if token[:1] == b"O":
                return token[1:]
        return None

    def has(self, flag: bytes) -> bool:
        return any(token[:1] == flag for token in self.tokens)

    def to_bytes(self) -> bytes:
        """The request on the wire (ms includes its data block)."""
        if self.command == b"mn":
            return b"mn\r\n"
        parts = [self.command, self.wire_key]
        if self.command == b"ms":
            data = self.data or b""
            parts.append(b"%d" % len(data))
            return b" ".join(parts + self.tokens) + b"\r\n" + data + b"\r\n"
        return b" ".join(parts + self.tokens) + b"\r\n"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetaRequest):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        data = "" if self.data is None else f", data={self.data!r}"
        return f"MetaRequest({self.command!r}, {self.key!r}, {self.tokens!r}{data})"


def build(command: bytes, key: bytes, *flags: bytes, data: bytes | None = None) -> MetaRequest:
    """A client-side request; the flags are decoded as a server would (ValueError if bad)."""
    request = MetaRequest(command, key, flags, data)
    error = _decode_flags(request, 0)
    if error is not None:
        raise ValueError(error.decode().strip())
    return request


# -- keys ---------------------------------------------------------------------------------------

_BASE64_ALPHABET = re.compile(rb"[^A-Za-z0-9+/=]")


def decode_key(wire_key: bytes) -> bytes | None:
    """memcached's lenient base64 decoder: other bytes are skipped; None if it fails."""
    text = _BASE64_ALPHABET.sub(b"", wire_key)
    if not text or len(text) % 4:
        return None
    # memcached stops at the first group that holds padding; more than two '=' is an error.
    for start in range(0, len(text), 4):
        pad = text[start:start + 4].count(b"=")
        if pad:
            if pad > 2:
                return None
            text = text[:start + 4]
            break
    groups = [text[i:i + 4] for i in range(0, len(text), 4)]
    out = []
    for group in groups:
        pad = group.count(b"=")
        # '=' decodes as zero bits wherever it sits; the padding count trims the output.
        raw = binascii.a2b_base64(group.replace(b"=", b"A"))
        out.append(raw[:3 - pad])
    key = b"".join(out)
    return key or None


def encode_key(key: bytes) -> bytes:
    return base64.b64encode(key)


def key_token(key: bytes, binary: bool) -> bytes:
    """The ``k`` reply token: binary keys go back base64-encoded, followed by a ``b`` flag."""
    if binary:
        return b"k" + encode_key(key) + b" b"
    return b"k" + key


# -- server side: parsing -----------------------------------------------------------------------

#: Flags with a number: (parser, attribute, error line when it does not parse; None keeps
#: memcached's default message, as it does for F).
_NUMERIC_FLAGS = {
    ord("N"): (strtol32, "vivify", BAD_TOKEN),
    ord("T"): (strtol32, "exptime", BAD_TOKEN),
    ord("R"): (strtol32, "recache", BAD_TOKEN),
    ord("C"): (strtoull, "cas", BAD_TOKEN),
    ord("E"): (strtoull, "new_cas", BAD_TOKEN),
    ord("F"): (strtoul32, "client_flags", None),
    ord("J"): (strtoull, "initial", b"CLIENT_ERROR invalid numeric initial value\r\n"),
    ord("D"): (strtoull, "delta", b"CLIENT_ERROR invalid numeric delta value\r\n"),
}
_LATE_BUMP = frozenset(b"hlNTR")
_SWITCHES = {ord("v"): "value", ord("u"): "no_update", ord("q"): "quiet",
             ord("I"): "invalidate", ord("x"): "remove_value"}


def _decode_flags(request: MetaRequest, start: int) -> bytes | None:
    """memcached's _meta_flag_preparse over ``request.tokens[start:]``: the error line or None.

    A duplicate or unknown flag stops at once; other bad tokens are remembered (the last one
    wins) while the rest is still read, as memcached does.
    """
    error = None
    failed = False
    seen = set()
    for token in request.tokens[start:]:
        flag = token[0]
        if flag >= 127 or flag in seen:
            return DUPLICATE_FLAG
        seen.add(flag)
        if flag not in KNOWN_FLAGS:
            return INVALID_FLAG
        if flag in _LATE_BUMP:
            request.bump_late = True
        if flag in _NUMERIC_FLAGS:
            parse, attribute, message = _NUMERIC_FLAGS[flag]
            number = parse(token[1:])
            if number is None:
                error, failed = message or error, True
            else:
                setattr(request, attribute, number)
        elif flag in _SWITCHES:
            setattr(request, _SWITCHES[flag], True)
        elif flag == 98:  # b
            key = decode_key(request.wire_key)
            request.binary = True
            if key is None:
                error, failed = DECODE_FAILED, True
            request.key = key or b""
        elif flag == 77:  # M
            if len(token) != 2:
                error, failed = b"CLIENT_ERROR incorrect length for M token\r\n", True
            else:
                request.mode = token[1:]
    if failed:
        return error or BAD_FORMAT
    return None


def _opaque_too_long(tokens: list[bytes]) -> bool:
    return any(t[:1] == b"O" and len(t) > MAX_OPAQUE_LENGTH for t in tokens)


def _keyed(tokens: list, too_many: bytes, flags_from: int = 2) -> object:
    """The checks every keyed meta command starts with, in memcached's order, then the
    request (flags not decoded yet) or the Invalid."""
    if len(tokens) < 2:
        return Invalid(ERROR)
    if len(tokens[1]) > MAX_KEY_LENGTH or len(tokens) < flags_from:
        return Invalid(BAD_FORMAT)
    if len(tokens) + 1 > MAX_META_TOKENS:
        return Invalid(too_many)
    return MetaRequest(tokens[0], tokens[1], tokens[flags_from:])


def parse_mg(tokens: list) -> object:
    request = _keyed(tokens, MG_TOO_MANY)
    if type(request) is MetaRequest:
        error = _decode_flags(request, 0)
        if error is not None:
            return Invalid(error)
    return request


def _parse_md_ma(tokens: list) -> object:
    request = _keyed(tokens, TOO_MANY)
    if type(request) is MetaRequest and _decode_flags(request, 0) is not None:
        return Invalid(INVALID_OR_DUPLICATE)
    return request


def parse_md(tokens: list) -> object:
    request = _parse_md_ma(tokens)
    if type(request) is MetaRequest and _opaque_too_long(request.tokens):
        return Invalid(OPAQUE_TOO_LONG)
    return request


def parse_ma(tokens: list) -> object:
    request = _parse_md_ma(tokens)
    if type(request) is MetaRequest and request.mode is not None \
            and request.mode not in MA_MODES:
        return Invalid(BAD_MA_MODE)
    return request


def parse_ms(tokens: list) -> object:
    request = _keyed(tokens, TOO_MANY, flags_from=3)
    if type(request) is not MetaRequest:
        return request
    length = strtol32(tokens[2])
    if length is None or length < 0 or length > MAX_VALUE_LENGTH:
        return Invalid(BAD_FORMAT)
    # From here on memcached knows the data length and swallows the block after an error.
    error = _decode_flags(request, 0)
    if error is None and request.mode is not None and request.mode not in MS_MODES:
        error = BAD_MS_MODE
    if error is None and _opaque_too_long(request.tokens):
        error = OPAQUE_TOO_LONG
    return StorageHeader(request, length, Invalid(error) if error else None)


def parse_me(tokens: list) -> object:
    if len(tokens) < 2 or len(tokens[1]) > MAX_KEY_LENGTH:
        return Invalid(BAD_FORMAT)
    request = MetaRequest(b"me", tokens[1], tokens[2:])
    if len(tokens) >= 3 and tokens[2] == b"b":
        key = decode_key(tokens[1])
        if key is None:
            return Invalid(BAD_FORMAT)
        request.key = key
        request.binary = True
    return request


def parse_mn(tokens: list) -> object:
    return MetaRequest(b"mn")


META_PARSERS = {b"mg": parse_mg, b"ms": parse_ms, b"md": parse_md, b"ma": parse_ma,
                b"me": parse_me, b"mn": parse_mn}


# -- replies, both directions -------------------------------------------------------------------

class MetaReply:
    """One meta reply: ``code`` (``b"HD"``, ``b"VA"``, ...), the returned flag tokens in order,
    and the data block for VA. ``suppressed`` marks the nominal reply a quiet (q) request did
    not send, recognised by a client once a later reply arrived."""

    __slots__ = ("code", "flags", "value", "suppressed")

    def __init__(self, code: bytes, flags: list[bytes] | None = None,
                 value: bytes | None = None, suppressed: bool = False) -> None:
        self.code = code
        self.flags = flags if flags is not None else []
        self.value = value
        self.suppressed = suppressed

    def flag(self, name: bytes) -> bytes | None:
        """The argument of a returned flag (``reply.flag(b"c")`` -> ``b"42"``), or None."""
        for token in self.flags:
            if token[:1] == name:
                return token[1:]
        return None

    def has(self, name: bytes) -> bool:
        return any(token[:1] == name for token in self.flags)

    @property
    def is_error(self) -> bool:
        return False

    def to_bytes(self) -> bytes:
        head = self.code
        if self.code == b"VA":
            head = b"VA %d" % len(self.value or b"")
        line = b" ".join([head, *self.flags]) + b"\r\n"
        if self.code == b"VA":
            return line + (self.value or b"") + b"\r\n"
        return line

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetaReply) and (self.code, self.flags, self.value) == (
            other.code, other.flags, other.value)

    def __repr__(self) -> str:
        value = "" if self.value is None else f", value={self.value!r}"
        quiet = ", suppressed" if self.suppressed else ""
        return f"MetaReply({self.code!r}, {self.flags!r}{value}{quiet})"


def parse_reply_line(line: bytes) -> tuple[MetaReply, int]:
    """A meta reply line (without CRLF): the reply and the length of the data block that
    follows (-1 for none). ME lines keep their ``key=value`` text as flags."""
    parts = line.split(b" ")
    code = parts[0]
    if code == b"VA":
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError("bad VA line: %r" % line[:80])
        return MetaReply(code, parts[2:]), int(parts[1])
    return MetaReply(code, parts[1:]), -1
