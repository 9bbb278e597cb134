"""Built-ins for logic and arithmetic: type tests, @equals/@less, boolean and int64 operators
(and, or, not, add ... mod, bitwise*), and control and environment: @if, @fail, @define,
@defined, @import, @isLocalIp.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from .calls import _Args, _BuiltinTable, _opt
from .errors import _describe, _Error, _fail
from .values import _M64, Json, _equal, _is_int, _less, _signed64, _type_name


def _b_import(a: _Args) -> Json:
    path = a["path"]
    if not isinstance(path, str):
        _fail(f"import path is {_type_name(path)}, string expected")
    prep = a.prep
    if path in prep.import_cache:  # each path is read and expanded once per config
        return prep.import_cache[path]
    try:
        result = prep.import_file(path)
    except Exception as e:  # mcrouter falls back to the default on any failure
        if "default" in a:
            prep.import_cache[path] = a["default"]
            return prep.import_cache[path]
        _fail(f"Import '{path}': {_describe(e) if isinstance(e, _Error) else e}")
    prep.import_cache[path] = result
    return result


def _type_test(kind: str) -> Callable[[_Args], Json]:
    return lambda a: _type_name(a["value"]) == kind


def _int_pair(a: _Args, who: str) -> tuple[int, int]:
    if not _is_int(a["A"]):
        _fail(f"{who}: A is not an integer")
    if not _is_int(a["B"]):
        _fail(f"{who}: B is not an integer")
    return a["A"], a["B"]


def _int_op(who: str, op: Callable[[int, int], int]) -> Callable[[_Args], Json]:
    """A binary integer built-in with int64 wrap-around."""
    return lambda a: _signed64(op(*_int_pair(a, who)))


def _divide(who: str, op: Callable[[int, int], int]) -> Callable[[_Args], Json]:
    def run(a: _Args) -> Json:
        x, y = _int_pair(a, who)
        if y == 0:
            _fail(f"{who}: B == 0")
        return _signed64(op(x, y))
    return run


def _c_div(x: int, y: int) -> int:
    """C++ division truncates toward zero."""
    q = abs(x) // abs(y)
    return q if (x < 0) == (y < 0) else -q


def _b_bitwise_not(a: _Args) -> Json:
    if not _is_int(a["A"]):
        _fail("bitwiseNot: A is not an integer")
    return ~a["A"]


def _bool_arg(a: _Args, name: str, who: str) -> bool:
    v = a[name]
    if not isinstance(v, bool):
        _fail(f"{who}: {name} is {_type_name(v)}, expected bool")
    return v


def _b_and(a: _Args) -> Json:
    return _bool_arg(a, "A", "and") and _bool_arg(a, "B", "and")  # B only if A


def _b_or(a: _Args) -> Json:
    return _bool_arg(a, "A", "or") or _bool_arg(a, "B", "or")  # B only if not A


def _b_not(a: _Args) -> Json:
    if not isinstance(a["A"], bool):
        _fail("not: A is not bool")
    return not a["A"]


def _b_fail(a: _Args) -> Json:
    msg = a["msg"]
    return _fail(msg if isinstance(msg, str) else json.dumps(msg, indent=2))


def _b_if(a: _Args) -> Json:
    condition = a["condition"]
    if not isinstance(condition, bool):
        _fail("If: condition is not bool")
    return a["is_true"] if condition else a["is_false"]


def _b_defined(a: _Args) -> Json:
    """True for a variable visible where @defined is written, or a const; macros don't count."""
    name = a["name"]
    if not isinstance(name, str):
        _fail(f"Defined: name is {_type_name(name)}, string expected")
    return a.prep.is_defined(name, a.caller)


def _b_is_local_ip(a: _Args) -> Json:
    import ipaddress
    text = a["ip"]
    if not isinstance(text, str):
        _fail(f"isLocalIp: ip is {_type_name(text)}, string expected")
    try:
        ip = ipaddress.ip_address(text.strip("[]") if text.startswith("[") else text)
    except ValueError:
        return False
    return _unmapped(ip) in _local_addresses()


def _unmapped(ip: Any) -> Any:
    return getattr(ip, "ipv4_mapped", None) or ip


def _local_addresses() -> set:
    import ipaddress
    import socket
    import psutil  # a pymc dependency; mcrouter walks getifaddrs() the same way
    found = set()
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                found.add(_unmapped(ipaddress.ip_address(addr.address.split("%")[0])))
    return found


_AB = ["A", "B"]
_LOGIC_BUILTINS: _BuiltinTable = {
    "import": (["path", _opt("default")], _b_import, True),
    "equals": (_AB, lambda a: _equal(a["A"], a["B"]), False),
    "isArray": (["value"], _type_test("array"), False),
    "isBool": (["value"], _type_test("boolean"), False),
    "isInt": (["value"], _type_test("int64"), False),
    "isDouble": (["value"], _type_test("double"), False),
    "isObject": (["value"], _type_test("object"), False),
    "isString": (["value"], _type_test("string"), False),
    "less": (_AB, lambda a: _less(a["A"], a["B"]), False),
    "bitwiseAnd": (_AB, _int_op("bitwiseAnd", lambda x, y: x & y), False),
    "bitwiseOr": (_AB, _int_op("bitwiseOr", lambda x, y: x | y), False),
    "bitwiseXor": (_AB, _int_op("bitwiseXor", lambda x, y: x ^ y), False),
    "bitwiseNot": (["A"], _b_bitwise_not, False),
    # shifts act on the unsigned value; the count is taken mod 64 as x86 does
    "bitwiseLeftShift": (_AB, _int_op("bitwiseLeftShift",
                                      lambda x, y: (x & _M64) << (y & 63)), False),
    "bitwiseRightShift": (_AB, _int_op("bitwiseRightShift",
                                       lambda x, y: (x & _M64) >> (y & 63)), False),
    "and": (_AB, _b_and, True),
    "or": (_AB, _b_or, True),
    "not": (["A"], _b_not, False),
    "add": (_AB, _int_op("add", lambda x, y: x + y), False),
    "sub": (_AB, _int_op("sub", lambda x, y: x - y), False),
    "mul": (_AB, _int_op("mul", lambda x, y: x * y), False),
    "div": (_AB, _divide("div", _c_div), False),
    "mod": (_AB, _divide("mod", lambda x, y: x - _c_div(x, y) * y), False),
    "fail": (["msg"], _b_fail, False),
    "if": (["condition", "is_true", "is_false"], _b_if, True),
    "define": (["result"], lambda a: a["result"], False),
    "defined": (["name"], _b_defined, False),
    "isLocalIp": (["ip"], _b_is_local_ip, False),
}
