"""JSON values as folly::dynamic sees them: type names, equality and ordering across types,
int64 wrap-around, copying, and the scalar conversions (folly::to) behind @int, @double, @str
and @bool.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from .errors import _fail

Json = Any
_M64 = (1 << 64) - 1
_MISSING = object()
_SPACE = " \t\n\v\f\r"  # C isspace()


def _type_name(v: Json) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _is_int(v: Json) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Json) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _signed64(u: int) -> int:
    u &= _M64
    return u - (1 << 64) if u >> 63 else u


# folly orders values of different types by this enum, except that ints and doubles compare
# numerically.
_TYPE_RANK = {"null": 0, "array": 1, "boolean": 2, "double": 3, "int64": 4, "object": 5,
              "string": 6}


def _equal(a: Json, b: Json) -> bool:
    ta, tb = _type_name(a), _type_name(b)
    if ta != tb:
        return _is_number(a) and _is_number(b) and a == b
    if ta == "array":
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if ta == "object":
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def _less(a: Json, b: Json) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        _fail("Can not compare objects")
    ta, tb = _type_name(a), _type_name(b)
    if ta != tb:
        if _is_number(a) and _is_number(b):
            return a < b
        return _TYPE_RANK[ta] < _TYPE_RANK[tb]
    if ta == "array":
        for x, y in zip(a, b):
            if _less(x, y):
                return True
            if _less(y, x):
                return False
        return len(a) < len(b)
    return ta != "null" and a < b


def _clone(v: Json) -> Json:
    """Copy containers so that no two places of the result share an object (values are
    substituted by reference while expanding)."""
    if isinstance(v, dict):
        return {k: _clone(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clone(x) for x in v]
    return v


# -- scalar conversions (folly::to as dynamic::asInt/asDouble/asString/asBool use it) -----------

_INT_TEXT = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*\Z")
_BOOL_WORDS = {"true": True, "t": True, "yes": True, "y": True, "on": True,
               "false": False, "f": False, "no": False, "n": False, "off": False}


def _as_int(v: Json) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not math.isfinite(v) or v != int(v) or not -2**63 <= int(v) < 2**63:
            raise ValueError(f"loss of precision converting {v!r}")
        return int(v)
    if isinstance(v, str):
        if not _INT_TEXT.match(v):
            raise ValueError(f"invalid integer: '{v}'")
        n = int(v)
        if not -2**63 <= n < 2**63:
            raise ValueError(f"integer out of range: '{v}'")
        return n
    raise ValueError(f"expected int64/double/boolean/string, got {_type_name(v)}")


def _as_double(v: Json) -> float:
    if isinstance(v, (bool, int, float)):
        return float(v)
    if isinstance(v, str) and "_" not in v:
        try:
            return float(v.strip(_SPACE))
        except ValueError:
            pass
        raise ValueError(f"invalid double: '{v}'")
    raise ValueError(f"expected int64/double/boolean/string, got {_type_name(v)}")


def _as_bool(v: Json) -> bool:
    if isinstance(v, (bool, int, float)):
        return bool(v)
    if isinstance(v, str):
        word = v.strip(_SPACE)
        if word.isascii() and word.isdigit() and int(word) in (0, 1):
            return int(word) == 1
        if word.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[word.lower()]
        raise ValueError(f"invalid boolean: '{v}'")
    raise ValueError(f"expected int64/double/boolean/string, got {_type_name(v)}")


def _as_string(v: Json) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "1" if v else "0"  # folly converts bool as the integer it is
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _double_to_string(v)
    raise ValueError(f"expected int64/double/boolean/string, got {_type_name(v)}")


def _double_to_string(x: float) -> str:
    """double-conversion's ToShortest as folly configures it: plain decimal for exponents in
    [-6, 21), otherwise ``dE±n``; no trailing ``.0``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    _, digit_tuple, exp = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    point = len(digit_tuple) + exp  # digits before the decimal point
    if -6 <= point - 1 < 21:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return f"{sign}{digits[:point]}.{digits[point:]}"
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{sign}{mantissa}E{point - 1}"
