"""memcached's safe_strto* number rules, so odd input is accepted or refused exactly as C does.

C's strtol family skips leading white space, takes an optional sign, needs at least one digit
and then the end of the token or white space. Values outside the type's range are refused
(ERANGE); results are then truncated to the destination width as a C assignment would.
"""

from __future__ import annotations

import re

_C_NUMBER = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)(?:[ \t\n\v\f\r]|\Z)")
U64 = 2**64
U32 = 2**32


def _signed_value(token: bytes) -> int | None:
    match = _C_NUMBER.match(token)
    if match is None:
        return None
    value = int(match.group(2))
    return -value if match.group(1) == b"-" else value


def strtoull(token: bytes) -> int | None:
    """safe_strtoull: an unsigned 64-bit value, or None."""
    if token.isdigit():
        value = int(token)
        return value if value < U64 else None
    value = _signed_value(token)
    if value is None or abs(value) >= U64:
        return None
    if value < 0:
        value += U64
        if value >= 2**63 and b"-" in token:
            return None
    return value


def strtoul32(token: bytes) -> int | None:
    """safe_strtoul into a uint32_t (memcached's client flags): parsed as 64-bit, truncated."""
    value = strtoull(token)
    return None if value is None else value & (U32 - 1)


def strtol32(token: bytes) -> int | None:
    """safe_strtol into an int32_t: a 64-bit long, truncated to 32 bits two's complement."""
    if token.isdigit() and len(token) < 10:
        return int(token)
    value = _signed_value(token)
    if value is None or not -(2**63) <= value < 2**63:
        return None
    value &= U32 - 1
    return value - U32 if value >= 2**31 else value


def strtoll(token: bytes) -> int | None:
    """safe_strtoll: a signed 64-bit value, or None."""
    value = _signed_value(token)
    if value is None or not -(2**63) <= value < 2**63:
        return None
    return value
