"""Classic memcached text commands: one parser per command name, in a table.

Each parser takes the tokens of one line (command first) and returns a Request, an Invalid
(the reply memcached gives for a malformed line) or a Close. Storage commands return a
StorageHeader: the caller then reads the data block. The checks and their order follow
memcached 1.6.18's proto_text.c so that odd input gets the same answer.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Union

from .messages import (BAD_FORMAT, ERROR, MAX_KEY_LENGTH, MAX_VALUE_LENGTH, NUL, Close,
                       Invalid, Request, StorageHeader)
from .meta import META_PARSERS
from .numbers import strtol32, strtoul32, strtoull

BAD_EXPTIME = b"CLIENT_ERROR invalid exptime argument\r\n"
BAD_DELTA = b"CLIENT_ERROR invalid numeric delta argument\r\n"
BAD_DELETE = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
NOREPLY = b"noreply"


Parsed = Union[Request, Invalid, Close, StorageHeader]
Parser = Callable[[list], Parsed]


def _error() -> Invalid:
    return Invalid(ERROR)


def _noreply(tokens: list) -> bool:
    return tokens[-1] == NOREPLY


def _count_is(tokens: list, *counts: int) -> bool:
    # memcached's WANT_TOKENS counts include a terminating empty token.
    return len(tokens) + 1 in counts


def parse_storage(tokens: list) -> Parsed:
    command = tokens[0]
    with_cas = command == b"cas"
    if not _count_is(tokens, 7, 8) if with_cas else not _count_is(tokens, 6, 7):
        return _error()
    noreply = _noreply(tokens)
    key = tokens[1]
    if len(key) > MAX_KEY_LENGTH:
        return Invalid(BAD_FORMAT, noreply)
    flags = strtoul32(tokens[2])
    exptime = strtol32(tokens[3])
    length = strtol32(tokens[4])
    if flags is None or exptime is None or length is None:
        return Invalid(BAD_FORMAT, noreply)
    cas_unique = 0
    if with_cas:
        cas_unique = strtoull(tokens[5])
        if cas_unique is None:
            return Invalid(BAD_FORMAT, noreply)
    if length < 0 or length > MAX_VALUE_LENGTH:
        return Invalid(BAD_FORMAT, noreply)
    return StorageHeader(Request(command, [key], flags, exptime, None, cas_unique,
                                 noreply=noreply), length)


def _parse_keys(command: bytes, keys: list, exptime: int, check_lengths: bool) -> Parsed:
    if check_lengths and keys and max(map(len, keys)) > MAX_KEY_LENGTH:
        return Invalid(BAD_FORMAT, drop_pending=True)
    return Request(command, keys, exptime=exptime)


def parse_get(tokens: list, check_lengths: bool = True) -> Parsed:
    if len(tokens) < 2:
        return _error()
    return _parse_keys(tokens[0], tokens[1:], 0, check_lengths)


def parse_gat(tokens: list, check_lengths: bool = True) -> Parsed:
    if len(tokens) < 2:
        return _error()
    exptime = strtol32(tokens[1])
    if exptime is None:
        return Invalid(BAD_EXPTIME)
    return _parse_keys(tokens[0], tokens[2:], exptime, check_lengths)


def parse_delete(tokens: list) -> Parsed:
    if not 2 <= len(tokens) <= 4:
        return _error()
    noreply = _noreply(tokens) if len(tokens) > 2 else False
    if len(tokens) > 2:
        hold_is_zero = tokens[2] == b"0"
        valid = (len(tokens) == 3 and (hold_is_zero or noreply)) or (
            len(tokens) == 4 and hold_is_zero and noreply)
        if not valid:
            return Invalid(BAD_DELETE, noreply)
    if len(tokens[1]) > MAX_KEY_LENGTH:
        return Invalid(BAD_FORMAT, noreply)
    return Request(b"delete", [tokens[1]], noreply=noreply)


def _key_and_number(tokens: list, parse, bad_number: bytes, field: str) -> Parsed:
    """``<command> <key> <number> [noreply]`` (incr, decr, touch)."""
    if not _count_is(tokens, 4, 5):
        return _error()
    noreply = _noreply(tokens)
    if len(tokens[1]) > MAX_KEY_LENGTH:
        return Invalid(BAD_FORMAT, noreply)
    number = parse(tokens[2])
    if number is None:
        return Invalid(bad_number, noreply)
    request = Request(tokens[0], [tokens[1]], noreply=noreply)
    setattr(request, field, number)
    return request


def parse_arithmetic(tokens: list) -> Parsed:
    return _key_and_number(tokens, strtoull, BAD_DELTA, "delta")


def parse_touch(tokens: list) -> Parsed:
    return _key_and_number(tokens, strtol32, BAD_EXPTIME, "exptime")


def parse_flush_all(tokens: list) -> Parsed:
    if not 1 <= len(tokens) <= 3:
        return _error()
    noreply = _noreply(tokens)
    delay: int | None = 0
    if len(tokens) != (3 if noreply else 2) - 1:
        delay = strtol32(tokens[1])
    # exptime None = an invalid delay, reported by the dispatcher after the -F check
    # (memcached's order).
    return Request(b"flush_all", exptime=delay, noreply=noreply,  # type: ignore[arg-type]
                   args=tuple(tokens[1:]))


def parse_verbosity(tokens: list) -> Parsed:
    if not _count_is(tokens, 3, 4):
        return _error()
    noreply = _noreply(tokens)
    level = strtoul32(tokens[1])
    if level is None:
        return Invalid(BAD_FORMAT, noreply)
    return Request(b"verbosity", delta=level, noreply=noreply)


def parse_cache_memlimit(tokens: list) -> Parsed:
    if not _count_is(tokens, 3, 4):
        return _error()
    noreply = _noreply(tokens)
    megabytes = strtoul32(tokens[1])
    if megabytes is None:
        return Invalid(ERROR, noreply)
    return Request(b"cache_memlimit", delta=megabytes, noreply=noreply)


def _admin(min_tokens: int = 1, noreply_allowed: bool = False) -> Parser:
    def parse(tokens: list) -> Parsed:
        if len(tokens) < min_tokens:
            return _error()
        noreply = noreply_allowed and _noreply(tokens)
        return Request(tokens[0], noreply=noreply, args=tuple(tokens[1:]))
    return parse


def parse_quit(tokens: list) -> Parsed:
    return Close("quit")


LINE_PARSERS: dict[bytes, Parser] = {
    b"get": parse_get,
    b"gets": parse_get,
    b"bget": parse_get,
    b"gat": parse_gat,
    b"gats": parse_gat,
    b"set": parse_storage,
    b"add": parse_storage,
    b"replace": parse_storage,
    b"append": parse_storage,
    b"prepend": parse_storage,
    b"cas": parse_storage,
    b"delete": parse_delete,
    b"incr": parse_arithmetic,
    b"decr": parse_arithmetic,
    b"touch": parse_touch,
    b"flush_all": parse_flush_all,
    b"verbosity": parse_verbosity,
    b"cache_memlimit": parse_cache_memlimit,
    b"version": _admin(),
    b"quit": parse_quit,
    b"stats": _admin(),
    b"shutdown": _admin(),
    b"slabs": _admin(),
    b"lru": _admin(2, noreply_allowed=True),
    b"lru_crawler": _admin(),
    b"watch": _admin(),
    b"debugtime": _admin(2),
    b"misbehave": _admin(),
    **META_PARSERS,
}


#: For a server that checks the length of get keys itself, as it looks them up (memcached
#: answers an over-long key with an error only after looking up and counting the keys before it).
UNCHECKED_GET_PARSERS: dict[bytes, Parser] = {
    command: partial(LINE_PARSERS[command], check_lengths=False)
    for command in (b"get", b"gets", b"bget", b"gat", b"gats")}


def parse_line(line: bytes, parsers: dict[bytes, Parser] = LINE_PARSERS) -> Parsed:
    """Parse one command line (without its line ending)."""
    if NUL in line:  # memcached reads the line as a C string
        line = line[:line.index(b"\0")]
    tokens = line.split(b" ")
    if b"" in tokens:
        tokens = [t for t in tokens if t]
    if not tokens or len(tokens[0]) < 2:
        return Invalid(ERROR)
    parser = parsers.get(tokens[0])
    if parser is not None:
        return parser(tokens)
    if len(tokens[0]) == 2 and tokens[0][:1] == b"m":  # memcached: every m? is meta
        return Invalid(ERROR)
    if tokens[-1].startswith(b"HTTP/"):
        return Close("HTTP request")
    return Invalid(ERROR)
