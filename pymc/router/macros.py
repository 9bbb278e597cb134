"""mcrouter's config preprocessor (lib/config/ConfigPreprocessor.cpp): macros, consts, vars,
``%param%`` substitution, ``@import`` and the built-in functions, applied to parsed JSON.

Vocabulary, as in mcrouter:

* ``"macros"`` at the top of a config: object name → ``{"type": "macroDef", "params": [...],
  "result": ...}`` or ``{"type": "constDef", "result": ...}``, or an array of such objects
  (processed in order). The section itself is expanded first, so it may use ``@import``,
  ``merge`` and anything defined by an earlier element of the array.
* A call is a string ``"@name(a, b)"`` / ``"@name"`` (arguments split at top-level commas; only
  parentheses nest, ``\\`` escapes the next character) or an object ``{"type": "name", ...}``
  whose keys are the named arguments. Macro bodies and consts are expanded when used, so a body
  may call any macro defined anywhere in the section.
* ``"%name%"`` is replaced by a macro parameter, loop variable, var or const. A string that is
  exactly one ``%name%`` takes the value with its JSON type; inside a longer string the value
  must be a string.
* ``"vars": {...}`` inside any object defines variables visible in that object.

Errors are :class:`ConfigError` whose message starts with the JSON path where the expansion
failed, followed by mcrouter's wording, e.g. ``route.children[2]: Macro: 'foo' not found``.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from contextlib import contextmanager
from decimal import Decimal
from functools import cmp_to_key
from typing import Any, Callable, Iterator

from pymc.router.hashing import _spooky_long, _spooky_short
from pymc.router.jsonc import ConfigError, loads

__all__ = ["preprocess", "NESTED_LIMIT"]

Json = Any
NESTED_LIMIT = 250  # mcrouter's default nestedLimit
_M64 = (1 << 64) - 1
_MISSING = object()
_SPACE = " \t\n\v\f\r"  # C isspace()
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


# -- errors -------------------------------------------------------------------------------------

class _Error(Exception):
    """An expansion failure. ``path`` collects the JSON path as the error unwinds; ``frames``
    the boundaries (macro bodies, consts, vars) it crossed, outermost first."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.path: list[str | int] = []
        self.frames: list[str] = []

    def at(self, segment: str | int) -> "_Error":
        self.path.insert(0, segment)
        return self

    def inside(self, label: str) -> "_Error":
        """Close the path so far under a boundary such as a macro body or a const."""
        self.frames.insert(0, f"{label} at {_format_path(self.path)}" if self.path else label)
        self.path = []
        return self


def _fail(message: str) -> Any:
    raise _Error(message)


def _describe(e: _Error) -> str:
    parts = [_format_path(e.path)] if e.path else []
    for frame, run in itertools.groupby(e.frames):  # a recursive macro repeats one frame
        count = len(list(run))
        parts.append(f"{frame} (x{count})" if count > 1 else frame)
    return ": ".join(parts + [e.message])


def _format_path(path: list[str | int]) -> str:
    out: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif _IDENT.match(seg):
            out.append(f".{seg}" if out else seg)
        else:
            out.append(f"[{json.dumps(seg)}]")
    return "".join(out)


# -- JSON values as folly::dynamic sees them ----------------------------------------------------

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


# -- scalar conversions (folly::to as dynamic::asInt/asDouble/asString/asBool use it) ------------

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


# -- hashes used by @hash and weightedHash ------------------------------------------------------

def _spooky64(data: bytes, seed: int = 0) -> int:
    """folly::hash::SpookyHashV2::Hash64."""
    return (_spooky_short if len(data) < 192 else _spooky_long)(data, seed, seed)[0]


def _twang_mix64(key: int) -> int:
    key &= _M64
    key = (~key + (key << 21)) & _M64
    key ^= key >> 24
    key = (key + (key << 3) + (key << 8)) & _M64
    key ^= key >> 14
    key = (key + (key << 2) + (key << 4)) & _M64
    key ^= key >> 28
    return (key + (key << 31)) & _M64


def _fnv64_broken(data: bytes) -> int:
    """folly::hash::fnv64_buf_BROKEN: FNV-1 that xors each byte as a *signed* char."""
    h = 14695981039346656037
    for byte in data:
        h = (h + (h << 1) + (h << 4) + (h << 5) + (h << 7) + (h << 8) + (h << 40)) & _M64
        h ^= (byte - 256) & _M64 if byte >= 0x80 else byte
    return h


def _rendezvous(weights: list[tuple[str, float]], key: int) -> int:
    """mcrouter's RendezvousHash::get over already-checked non-negative weights."""
    total = sum(w for _, w in weights)
    if total < 2.220446049250313e-16:
        _fail("WeightedHash: failed to compute hash: Sum of weights is 0")
    best, best_id = -1.0, 0
    for i, (name, weight) in enumerate(weights):
        weight /= total
        combined = float(_twang_mix64(_fnv64_broken(name.encode()) + key))
        scaled = combined / float(_M64)
        score = scaled ** (1.0 / weight) if weight > 2.220446049250313e-16 else 0.0
        if score > best:
            best, best_id = score, i
    return best_id


# -- call syntax: "@name(arg, arg)" -------------------------------------------------------------

def _find_unescaped(s: str, ch: str, end: int | None = None) -> int:
    end = len(s) if end is None else end
    if "\\" not in s:
        return s.find(ch, 0, end)
    i = 0
    while i < end:
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == ch:
            return i
        i += 1
    return -1


def _unescape_until(s: str, stop: str) -> tuple[int, str]:
    """Drop backslashes (keeping the escaped character) up to the first unescaped ``stop``;
    return its index (-1 if none, or if the string ends in a lone backslash) and the text."""
    if "\\" not in s:
        pos = s.find(stop)
        return pos, s if pos < 0 else s[:pos]
    out: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            if i + 1 == len(s):
                return -1, "".join(out)
            out.append(s[i + 1])
            i += 2
            continue
        if ch == stop:
            return i, "".join(out)
        out.append(ch)
        i += 1
    return -1, "".join(out)


def _matching_paren(s: str, i: int) -> int:
    depth = 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        depth += (s[i] == "(") - (s[i] == ")")
        if depth == 0:
            return i
        i += 1
    return -1


def _trim(s: str) -> str:
    """Strip whitespace, but keep a trailing space escaped by an odd number of backslashes."""
    s = s.lstrip(_SPACE)
    while s and s[-1] in _SPACE:
        slashes = len(s) - 1 - len(s[:-1].rstrip("\\"))
        if slashes:
            return s[:-1] if slashes % 2 == 0 else s
        s = s[:-1]
    return s


def _split_args(s: str) -> list[str]:
    """Arguments of a call; ``@m()`` has one empty argument, as in mcrouter."""
    args: list[str] = []
    while True:
        if not s:
            args.append("")
            return args
        comma = _find_unescaped(s, ",")
        if comma < 0:
            args.append(_trim(s))
            return args
        opened = _find_unescaped(s, "(", comma)
        if opened >= 0:  # the first argument is itself a call: skip to its closing bracket
            closing = _matching_paren(s, opened)
            if closing < 0:
                _fail(f"Brackets do not match: {s}")
            if closing == len(s) - 1:
                args.append(_trim(s))
                return args
            comma = s.find(",", closing + 1)
            if comma < 0:
                _fail("No comma after closing bracket")
        args.append(_trim(s[:comma]))
        s = s[comma + 1:]


# -- scopes -------------------------------------------------------------------------------------

class _Lazy:
    """A var not expanded yet (vars may refer to each other in any order)."""
    __slots__ = ("raw", "busy")

    def __init__(self, raw: Json):
        self.raw, self.busy = raw, False


class _Scope:
    """Names visible while expanding. A macro body starts a scope with no outer one: it sees
    only its parameters and the consts, never the caller's variables."""
    __slots__ = ("names", "outer")

    def __init__(self, names: dict[str, Json] | None = None, outer: "_Scope | None" = None):
        self.names = names if names is not None else {}
        self.outer = outer

    def define(self, name: str, value: Json) -> None:
        if name in self.names:
            _fail(f"'{name}' already exists in local scope")
        self.names[name] = value


# -- macros -------------------------------------------------------------------------------------

class _Args:
    """Arguments of one call. Eager macros see them expanded; lazy built-ins (@if, @and, @select,
    ...) expand each one only when asked, in the caller's scope."""

    def __init__(self, prep: "_Preprocessor", caller: _Scope, named: bool):
        self.prep, self.caller, self.named = prep, caller, named
        self._raw: dict[str, Json] = {}
        self._done: dict[str, Json] = {}

    def add_raw(self, name: str, raw: Json) -> None:
        self._check_new(name)
        self._raw[name] = raw

    def add_value(self, name: str, value: Json) -> None:
        self._check_new(name)
        self._done[name] = value

    def _check_new(self, name: str) -> None:
        if name in self._raw or name in self._done:
            _fail(f"'{name}' already exists in local scope")

    def __contains__(self, name: str) -> bool:
        return name in self._raw or name in self._done

    def __getitem__(self, name: str) -> Json:
        if name not in self._done:
            try:
                self._done[name] = self.prep.expand(self._raw.pop(name), self.caller)
            except _Error as e:
                raise e.at(name) if self.named else e
        return self._done[name]

    def names(self) -> list[str]:
        return [*self._raw, *self._done]


class _Macro:
    """A macro: parameters (name, default, required) and a function of the arguments."""

    def __init__(self, name: str, params: list[Json], func: Callable[[_Args], Json],
                 lazy: bool = False):
        self.name, self.func, self.lazy = name, func, lazy
        self.params = [self._param(p) for p in params]
        self.max_args = len(self.params)
        self.min_args = sum(1 for _, _, required in self.params if required)
        self._check_order()

    def _param(self, p: Json) -> tuple[str, Json, bool]:
        if isinstance(p, str):
            return p, None, True
        if not isinstance(p, dict):
            _fail(f"Macro param is {_type_name(p)}, expected string/object")
        if "name" not in p:
            _fail("Macro param object: 'name' not found")
        name = p["name"]
        if not isinstance(name, str):
            _fail(f"Macro param object name is {_type_name(name)}, string expected")
        optional = p.get("optional")
        if optional is not None and not isinstance(optional, bool):
            _fail(f"Incorrect definition for parameter '{name}' in macro '{self.name}'. Expected "
                  f"optional parameter 'optional' to be boolean, but got {_type_name(optional)}!")
        if "default" in p:
            if optional is False:
                _fail(f"Conflicting options provided for parameter '{name}' in macro "
                      f"'{self.name}'. Default was set, but the parameter is also explicitly "
                      "marked as not optional.")
            return name, p["default"], False
        return name, None, not optional

    def _check_order(self) -> None:
        seen_optional = False
        for _, _, required in self.params:
            if required and seen_optional:
                _fail(f"Incorrect defaults/optionals in macro {self.name}. All params after "
                      "optional/default one should also be optional or have default value")
            seen_optional = seen_optional or not required

    def call(self, prep: "_Preprocessor", args: list[str], caller: _Scope) -> Json:
        n = len(args)
        if n < self.min_args:
            _fail(f"Too few arguments for macro {self.name}. "
                  f"Expected at least {self.min_args} got {n}")
        if n > self.max_args:
            _fail(f"Too many arguments for macro {self.name}. "
                  f"Expected at most {self.max_args} got {n}")
        bound = _Args(prep, caller, named=False)
        for (name, _, _), raw in zip(self.params, args):
            bound.add_raw(name, raw)
        for name, default, _ in self.params[n:]:
            if default is not None:  # defaults are used as written, not expanded
                bound.add_value(name, default)
        return self._run(bound)

    def call_named(self, prep: "_Preprocessor", obj: dict, caller: _Scope) -> Json:
        bound = _Args(prep, caller, named=True)
        for name, default, required in self.params:
            if name in obj:
                bound.add_raw(name, obj[name])
            elif required:
                _fail(f"Macro call {self.name}: '{name}' parameter not found")
            elif default is not None:
                bound.add_value(name, default)
        return self._run(bound)

    def _run(self, bound: _Args) -> Json:
        if not self.lazy:
            for name in bound.names():
                bound[name]
        with bound.prep.nesting():
            return self.func(bound)


def _user_macro(name: str, params: list[Json], result: Json) -> _Macro:
    def body(args: _Args) -> Json:
        scope = _Scope({n: args[n] for n in args.names()})
        try:
            return args.prep.expand(result, scope)
        except _Error as e:
            raise e.inside(f"in macro '{name}'")
    return _Macro(name, params, body)


# -- built-in macros (name → params, function, lazy) --------------------------------------------

def _opt(name: str) -> dict:
    return {"name": name, "optional": True}


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


def _b_hash(a: _Args) -> Json:
    v = a["value"]
    if _is_int(v):
        return _signed64(_twang_mix64(v))
    if isinstance(v, str):
        return _signed64(_spooky64(v.encode()))
    return _fail(f"Hash: can not cast {_type_name(v)} to int or string")


def _b_weighted_hash(a: _Args) -> Json:
    dictionary, key = a["dictionary"], a["key"]
    if not isinstance(dictionary, dict):
        _fail(f"WeightedHash: dictionary is {_type_name(dictionary)}, expected object")
    weights = []
    for name, w in dictionary.items():
        if not _is_number(w):
            _fail(f"WeightedHash: {name} weight is {_type_name(w)}, expected number")
        if w < -0.01:  # small negative values are rounding noise, treated as 0
            _fail(f"WeightedHash: {name} weight {w} is negative")
        weights.append((name, max(float(w), 0.0)))
    if not weights:
        _fail("WeightedHash: dictionary is empty")
    if _is_int(key):
        key_hash = key & _M64
    elif isinstance(key, str):
        key_hash = _spooky64(key.encode())
    else:
        return _fail(f"WeightedHash: key is {_type_name(key)}, expected string or int")
    return weights[_rendezvous(weights, key_hash)][0]


def _caster(convert: Callable[[Json], Json], target: str) -> Callable[[_Args], Json]:
    def cast(a: _Args) -> Json:
        try:
            return convert(a["value"])
        except ValueError as e:
            return _fail(f"Can not cast {_type_name(a['value'])} to {target}: {e}")
    return cast


def _b_keys(a: _Args) -> Json:
    if not isinstance(a["dictionary"], dict):
        _fail("Keys: dictionary is not object")
    return list(a["dictionary"])


def _b_values(a: _Args) -> Json:
    if not isinstance(a["dictionary"], dict):
        _fail("Values: dictionary is not object")
    return list(a["dictionary"].values())


def _b_merge(a: _Args) -> Json:
    params = a["params"]
    if not isinstance(params, list):
        _fail("Merge: 'params' is not array")
    if not params:
        _fail("Merge: empty params")
    first = params[0]
    if isinstance(first, list):
        kind, res = list, list(first)
    elif isinstance(first, dict):
        kind, res = dict, dict(first)
    elif isinstance(first, str):
        kind, res = str, first
    else:
        return _fail("Merge: first param is not array/object/string")
    noun = {list: "an array", dict: "an object", str: "a string"}[kind]
    for i, p in enumerate(params[1:], 1):
        if not isinstance(p, kind):
            _fail(f"Merge: param {i} is not {noun}")
        if kind is list:
            res.extend(p)
        elif kind is dict:
            res.update(p)  # later objects override earlier properties
        else:
            res += p
    return res


def _minstd(seed: int) -> Callable[[], int]:
    """std::minstd_rand."""
    state = [seed % 2147483647 or 1]

    def draw() -> int:
        state[0] = state[0] * 48271 % 2147483647
        return state[0]
    return draw


def _uniform(draw: Callable[[], int], high: int) -> int:
    """libstdc++ uniform_int_distribution(0, high) over minstd_rand (range 1..2^31-2)."""
    span = 2147483645
    if high >= span:
        return draw() - 1
    scaling = span // (high + 1)
    limit = (high + 1) * scaling
    while True:
        r = draw() - 1
        if r < limit:
            return r // scaling


def _seeded_shuffle(items: list, seed: int) -> list:
    """libstdc++ std::shuffle with minstd_rand(seed), so seeded results match mcrouter."""
    items, draw, n = list(items), _minstd(seed), len(items)
    if n < 2:
        return items
    if 2147483645 // n >= n:  # libstdc++ draws two swap positions per random number
        i = 1
        if n % 2 == 0:
            j = _uniform(draw, 1)
            items[1], items[j] = items[j], items[1]
            i = 2
        while i < n:
            b0 = i + 1
            x = _uniform(draw, b0 * (b0 + 1) - 1)
            for pos in (x // (b0 + 1), x % (b0 + 1)):
                items[i], items[pos] = items[pos], items[i]
                i += 1
        return items
    for i in range(1, n):
        j = _uniform(draw, i)
        items[i], items[j] = items[j], items[i]
    return items


def _b_shuffle(a: _Args) -> Json:
    array = a["dictionary"]
    if not isinstance(array, list):
        _fail("Shuffle: argument must be an array")
    if "seed" in a:
        seed = a["seed"]
        if not _is_int(seed) or seed < 0:
            _fail("Shuffle: seed must be a non-negative integer")
        return _seeded_shuffle(array, seed & 0xFFFFFFFF)
    return random.sample(array, len(array))


def _b_select(a: _Args) -> Json:
    dictionary, key = a["dictionary"], a["key"]
    if isinstance(dictionary, dict):
        if not isinstance(key, str):
            _fail("Select: dictionary is an object, key is not a string")
        if key in dictionary:
            return dictionary[key]
        if "default" in a:
            return a["default"]
        return _fail(f"Select: '{key}' not found, default not specified")
    if isinstance(dictionary, list):
        if not _is_int(key):
            _fail("Select: dictionary is an array, key is not an integer")
        index = key + len(dictionary) if key < 0 else key
        if 0 <= index < len(dictionary):
            return dictionary[index]
        if "default" in a:
            return a["default"]
        return _fail(f"Select: index {index} is out of range [0, {len(dictionary)})")
    return _fail(f"Select: dictionary is {_type_name(dictionary)}, expected array/object")


def _b_slice(a: _Args) -> Json:
    """Inclusive range: list elements / string characters from..to, or object keys in
    [from, to]."""
    start, stop, d = a["from"], a["to"], a["dictionary"]
    if isinstance(d, dict):
        if not isinstance(start, str):
            _fail("Slice: from is not a string")
        if not isinstance(stop, str):
            _fail("Slice: to is not a string")
        return {k: v for k, v in d.items() if start <= k <= stop}
    if isinstance(d, (list, str)):
        if not (_is_int(start) and _is_int(stop)):
            _fail("Slice: from/to is not an int")
        return d[max(0, start):max(0, min(stop + 1, len(d)))]
    return _fail("Slice: dictionary is not array/object/string")


def _b_split(a: _Args) -> Json:
    d, delim = a["dictionary"], a["delim"]
    if not isinstance(d, str):
        _fail(f"Split: dictionary is {_type_name(d)}, string expected")
    if not isinstance(delim, str):
        _fail(f"Split: delim is {_type_name(delim)}, string expected")
    return d.split(delim) if delim else [d]


def _b_set(a: _Args) -> Json:
    key, value, d = a["key"], a["value"], a["dictionary"]
    if isinstance(d, dict):
        if not isinstance(key, str):
            _fail("Set: key is not a string")
        return {**d, key: value}
    if isinstance(d, list):
        if not _is_int(key):
            _fail("Set: key is not an int")
        if not 0 <= key < len(d):
            _fail(f"Set: key '{key}' is out of range [0..{len(d)})")
        return d[:key] + [value] + d[key + 1:]
    return _fail("Set: dictionary is not array/object")


def _b_range(a: _Args) -> Json:
    if not _is_int(a["from"]):
        _fail("Range: from is not an integer")
    if not _is_int(a["to"]):
        _fail("Range: to is not an integer")
    return list(range(a["from"], a["to"] + 1))


def _b_contains(a: _Args) -> Json:
    d, key = a["dictionary"], a["key"]
    if isinstance(d, dict):
        if not isinstance(key, str):
            _fail("Contains: dictionary is an object, key is not a string")
        return key in d
    if isinstance(d, list):
        return any(_equal(item, key) for item in d)
    if isinstance(d, str):
        if not isinstance(key, str):
            _fail("Contains: dictionary is a string, key is not a string")
        return key in d
    return _fail(f"Contains: dictionary is {_type_name(d)}, expected object/array/string")


def _sized(a: _Args, who: str) -> Json:
    d = a["dictionary"]
    if not isinstance(d, (dict, list, str)):
        _fail(f"{who}: dictionary is not object/array/string")
    return d


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


def _b_sort(a: _Args) -> Json:
    d = a["dictionary"]
    if not isinstance(d, list):
        _fail("sort: dictionary is not an array")
    return sorted(d, key=cmp_to_key(lambda x, y: -1 if _less(x, y) else int(_less(y, x))))


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
_BUILTINS: dict[str, tuple[list[Json], Callable[[_Args], Json], bool]] = {
    # name: (params, function, lazy — arguments expanded only when the function asks)
    "import": (["path", _opt("default")], _b_import, True),
    "hash": (["value"], _b_hash, False),
    "weightedHash": (["dictionary", "key"], _b_weighted_hash, False),
    "int": (["value"], _caster(_as_int, "int"), False),
    "double": (["value"], _caster(_as_double, "double"), False),
    "str": (["value"], _caster(_as_string, "string"), False),
    "bool": (["value"], _caster(_as_bool, "boolean"), False),
    "keys": (["dictionary"], _b_keys, False),
    "values": (["dictionary"], _b_values, False),
    "merge": (["params"], _b_merge, False),
    "select": (["dictionary", "key", _opt("default")], _b_select, True),
    "shuffle": (["dictionary", _opt("seed")], _b_shuffle, True),
    "slice": (["dictionary", "from", "to"], _b_slice, False),
    "split": (["dictionary", "delim"], _b_split, False),
    "range": (["from", "to"], _b_range, False),
    "contains": (["dictionary", "key"], _b_contains, False),
    "empty": (["dictionary"], lambda a: not _sized(a, "empty"), False),
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
    "size": (["dictionary"], lambda a: len(_sized(a, "size")), False),
    "add": (_AB, _int_op("add", lambda x, y: x + y), False),
    "sub": (_AB, _int_op("sub", lambda x, y: x - y), False),
    "mul": (_AB, _int_op("mul", lambda x, y: x * y), False),
    "div": (_AB, _divide("div", _c_div), False),
    "mod": (_AB, _divide("mod", lambda x, y: x - _c_div(x, y) * y), False),
    "fail": (["msg"], _b_fail, False),
    "sort": (["dictionary"], _b_sort, False),
    "set": (["dictionary", "key", "value"], _b_set, False),
    "if": (["condition", "is_true", "is_false"], _b_if, True),
    "define": (["result"], lambda a: a["result"], False),
    "defined": (["name"], _b_defined, False),
    "isLocalIp": (["ip"], _b_is_local_ip, False),
}


# -- built-in object forms: transform, process, foreach -----------------------------------------

def _name_field(obj: dict, field: str, default: str, who: str) -> str:
    name = obj.get(field, default)
    if not isinstance(name, str):
        _fail(f"{who}: {field} is {_type_name(name)}, string expected")
    return name


def _loop_scope(outer: _Scope, *names: str) -> _Scope:
    scope = _Scope(outer=outer)
    for name in names:
        scope.define(name, None)
    return scope


def _form_transform(p: "_Preprocessor", obj: dict, scope: _Scope) -> Json:
    """Map an object's keys/items or a list's items through itemTransform/keyTransform with
    %key% and %item% (renamed by keyName/itemName) in scope."""
    d = p.expand_field(obj, "dictionary", scope, "Transform")
    if not isinstance(d, (dict, list)):
        _fail("Transform: dictionary is not array/object")
    if not d:
        return d
    item_name = _name_field(obj, "itemName", "item", "Transform")
    key_name = _name_field(obj, "keyName", "key", "Transform")
    loop = _loop_scope(scope, key_name, item_name)
    item_t = obj.get("itemTransform", _MISSING)
    if isinstance(d, list):
        if item_t is _MISSING:
            _fail("Transform: itemTransform is required for array")
        out = []
        for i, item in enumerate(d):
            loop.names.update({key_name: i, item_name: item})
            out.append(p.expand_in(item_t, loop, "itemTransform"))
        return out
    key_t = obj.get("keyTransform", _MISSING)
    res: dict = {}
    for key, item in d.items():
        loop.names.update({key_name: key, item_name: item})
        new_key = key if key_t is _MISSING else p.expand_in(key_t, loop, "keyTransform")
        if not isinstance(new_key, (str, list)):
            _fail("Transformed key is not array/string")
        if new_key == []:
            continue  # an empty key list drops the entry
        new_item = item if item_t is _MISSING else p.expand_in(item_t, loop, "itemTransform")
        for k in [new_key] if isinstance(new_key, str) else new_key:
            if not isinstance(k, str):
                _fail("Transformed key list item is not a string")
            res[k] = new_item
    return res


def _entries(d: dict | list) -> list[tuple[Json, Json]]:
    return list(d.items()) if isinstance(d, dict) else list(enumerate(d))


def _form_process(p: "_Preprocessor", obj: dict, scope: _Scope) -> Json:
    """Fold: value = initialValue; for each entry value = transform(%key%, %item%, %value%)."""
    d = p.expand_field(obj, "dictionary", scope, "Process")
    value = p.expand_field(obj, "initialValue", scope, "Process")
    if "transform" not in obj:
        _fail("Process: 'transform' not found")
    if not isinstance(d, (dict, list)):
        _fail("Process: dictionary is not array/object")
    names = [_name_field(obj, f, dflt, "Process")
             for f, dflt in (("keyName", "key"), ("itemName", "item"), ("valueName", "value"))]
    loop = _loop_scope(scope, *names)
    for key, item in _entries(d):
        loop.names.update(zip(names, (key, item, value)))
        value = p.expand_in(obj["transform"], loop, "transform")
    return value


def _form_foreach(p: "_Preprocessor", obj: dict, scope: _Scope) -> Json:
    """Up to `top` entries of `from` that satisfy `where`, each expanded through `use` (default:
    the entry itself) and merged into one list or object."""
    source = p.expand_field(obj, "from", scope, "Foreach")
    if not isinstance(source, (dict, list)):
        _fail("Foreach: from is not object/array")
    item_name = _name_field(obj, "item", "item", "Foreach")
    key_name = _name_field(obj, "key", "key", "Foreach")
    top = len(source)
    if "top" in obj:
        top = p.expand_in(obj["top"], scope, "top")
        if not _is_int(top) or top < 0:
            _fail("Foreach: top should be a non-negative integer")
    loop = _loop_scope(scope, key_name, item_name)
    result: Json = None
    for key, item in _entries(source):
        if top <= 0:
            break
        loop.names.update({key_name: key, item_name: item})
        if "where" in obj:
            keep = p.expand_in(obj["where"], loop, "where")
            if not isinstance(keep, bool):
                _fail("Foreach: expanded 'where' is not boolean")
            if not keep:
                continue
        if "use" in obj:
            result = _foreach_append(result, p.expand_in(obj["use"], loop, "use"))
        elif isinstance(source, list):
            result = _foreach_append(result, [item])
        else:
            result = _foreach_append(result, {key: item})
        top -= 1
    if result is None:
        if "noMatchResult" in obj:
            return p.expand_in(obj["noMatchResult"], scope, "noMatchResult")
        return {} if isinstance(source, dict) else []
    return result


def _foreach_append(result: Json, use: Json) -> Json:
    """Merge one expansion into the result, which is a private copy and so grows in place."""
    if result is None:
        if not isinstance(use, (dict, list)):
            _fail("Foreach: expanded item is not object/array")
        return type(use)(use)
    if isinstance(result, dict):
        if not isinstance(use, dict):
            _fail("Foreach: expanded item is not an object")
        result.update(use)
    else:
        if not isinstance(use, list):
            _fail("Foreach: expanded item is not an array")
        result.extend(use)
    return result


_FORMS: dict[str, Callable[["_Preprocessor", dict, _Scope], Json]] = {
    # macroDef/constDef objects stay as written, so definitions survive @import and merge
    "macroDef": lambda p, obj, scope: obj,
    "constDef": lambda p, obj, scope: obj,
    "transform": _form_transform,
    "process": _form_process,
    "foreach": _form_foreach,
}


# -- the preprocessor ---------------------------------------------------------------------------

class _Const:
    __slots__ = ("raw", "value", "state")

    def __init__(self, raw: Json):
        self.raw, self.value, self.state = raw, None, "raw"


class _Preprocessor:
    def __init__(self, params: dict[str, Json],
                 import_resolver: Callable[[str], str] | None, nested_limit: int):
        self.resolver = import_resolver
        self.nested_limit = nested_limit
        self.depth = 0
        self.import_cache: dict[str, Json] = {}
        self.consts: dict[str, _Const] = {name: _Const(v) for name, v in params.items()}
        self.macros: dict[str, _Macro] = {
            name: _Macro(name, params_, func, lazy)
            for name, (params_, func, lazy) in _BUILTINS.items()}

    # definitions

    def define_all(self, section: Json) -> None:
        """The "macros" section: expanded first, then an object of definitions or an array of
        sections handled in order."""
        section = self.expand(section, _Scope())
        if isinstance(section, dict):
            for name, definition in section.items():
                try:
                    self.define(name, definition)
                except _Error as e:
                    raise e.at(name)
        elif isinstance(section, list):
            for i, item in enumerate(section):
                try:
                    self.define_all(item)
                except _Error as e:
                    raise e.at(i)
        else:
            _fail("config macros is not an array/object")

    def define(self, name: str, obj: Json) -> None:
        if not isinstance(obj, dict):
            _fail(f"'{name}' macro definition is not an object")
        kind = obj.get("type", _MISSING)
        if kind is _MISSING:
            _fail("macro definition: 'type' not found")
        if not isinstance(kind, str):
            _fail(f"macro definition type is {_type_name(kind)}, string expected")
        if kind == "macroDef":
            if "result" not in obj:
                _fail("Macro definition: 'result' not found")
            params = obj.get("params", [])
            if not isinstance(params, list):
                _fail(f"'{name}' macroDef params is not an array")
            self.macros[name] = _user_macro(name, params, obj["result"])
        elif kind == "constDef":
            if "result" not in obj:
                _fail("constDef: 'result' not found")
            self.consts[name] = _Const(obj["result"])  # replaces a global of the same name
        else:
            _fail(f"Unknown macro definition type: {kind}")

    # lookups

    def lookup(self, name: str, scope: _Scope | None) -> Json:
        while scope is not None:
            if name in scope.names:
                value = scope.names[name]
                return self._force_var(scope, name, value) if isinstance(value, _Lazy) else value
            scope = scope.outer
        const = self.consts.get(name)
        return _MISSING if const is None else self._force_const(name, const)

    def is_defined(self, name: str, scope: _Scope | None) -> bool:
        while scope is not None:
            if name in scope.names:
                return True
            scope = scope.outer
        return name in self.consts

    def _force_var(self, scope: _Scope, name: str, var: _Lazy) -> Json:
        if var.busy:
            _fail(f"Variable '{name}' refers to itself")
        var.busy = True
        try:
            scope.names[name] = self.expand(var.raw, scope)
        except _Error as e:
            var.busy = False
            raise e.inside(f"in var '{name}'")
        return scope.names[name]

    def _force_const(self, name: str, const: _Const) -> Json:
        if const.state == "busy":
            _fail(f"Const '{name}' refers to itself")
        if const.state == "raw":
            const.state = "busy"
            try:
                const.value = self.expand(const.raw, _Scope())
            except _Error as e:
                const.state = "raw"
                raise e.inside(f"in const '{name}'")
            const.state = "done"
        return const.value

    def import_file(self, path: str) -> Json:
        if self.resolver is None:
            raise _Error("no import resolver configured")
        return self.expand(loads(self.resolver(path)), _Scope())

    # expansion

    def expand(self, value: Json, scope: _Scope) -> Json:
        if isinstance(value, str):
            step = self._expand_string
        elif isinstance(value, dict):
            step = self._expand_object
        elif isinstance(value, list):
            step = self._expand_array
        else:
            return value
        with self.nesting():
            return step(value, scope)

    @contextmanager
    def nesting(self) -> Iterator[None]:
        # mcrouter bounds nesting (e.g. a macro calling itself) rather than recursion depth;
        # expansions and macro calls both count, as its expandMacros and expandStringMacro do
        self.depth += 1
        try:
            if self.depth >= self.nested_limit:
                _fail("Too many nested macros. Check for cycles.")
            yield
        finally:
            self.depth -= 1

    def expand_in(self, value: Json, scope: _Scope, segment: str | int) -> Json:
        """Expand a value found under `segment`, adding it to the path of any error."""
        try:
            return self.expand(value, scope)
        except _Error as e:
            raise e.at(segment)

    def expand_field(self, obj: dict, field: str, scope: _Scope, who: str) -> Json:
        if field not in obj:
            _fail(f"{who}: '{field}' not found")
        return self.expand_in(obj[field], scope, field)

    def _expand_string(self, s: str, scope: _Scope) -> Json:
        if not s.startswith("@"):
            return self.substitute(s, scope)
        opened = _find_unescaped(s, "(")
        if opened < 0:
            name_text, args = s[1:], []
        else:
            if not s.endswith(")"):
                _fail(f"No closing bracket for call '{s}'")
            name_text, args = s[1:opened], _split_args(s[opened + 1:-1])
        name = self.substitute(name_text, scope)  # "@%m%(x)" picks the macro by a variable
        if not isinstance(name, str):
            _fail(f"Macro name is {_type_name(name)}, string expected")
        macro = self.macros.get(name)
        if macro is None:
            _fail(f"Macro: '{name}' not found")
        return macro.call(self, args, scope)

    def substitute(self, s: str, scope: _Scope) -> Json:
        """Replace %name% and drop escaping backslashes. A string that is exactly one %name%
        (after any empty text) yields that value with its own type."""
        if "%" not in s and "\\" not in s:
            return s
        out: list[str] = []
        rest = s
        while rest:
            pos, text = _unescape_until(rest, "%")
            out.append(text)
            if pos < 0:
                break
            rest = rest[pos + 1:]
            end, name = _unescape_until(rest, "%")
            if end < 0:
                _fail(f"Odd number of percent signs in string around '{rest}'")
            value = self.lookup(name, scope)
            if value is _MISSING:
                _fail(f"Param in string: '{name}' not found")
            if end == len(rest) - 1 and not any(out):
                return value
            if not isinstance(value, str):
                _fail(f"Param in string '{name}' is not a string")
            out.append(value)
            rest = rest[end + 1:]
        return "".join(out)

    def _expand_object(self, obj: dict, scope: _Scope) -> Json:
        if "vars" in obj:
            scope = self._bind_vars(obj["vars"], scope)
            obj = {k: v for k, v in obj.items() if k != "vars"}
        if "type" in obj:
            kind = self.expand_in(obj["type"], scope, "type")
            if isinstance(kind, str):
                call = self._object_call(kind, obj, scope)
                if call is not _MISSING:
                    return call
        out = {}
        for key, value in obj.items():
            try:
                new_key = self.expand(key, scope)
                if not isinstance(new_key, str):
                    _fail("Expanded key is not a string")
                out[new_key] = self.expand(value, scope)
            except _Error as e:
                raise e.at(key)
        return out

    def _object_call(self, kind: str, obj: dict, scope: _Scope) -> Json:
        form = _FORMS.get(kind)
        if form is not None:
            return form(self, obj, scope)
        macro = self.macros.get(kind)
        if macro is not None:
            return macro.call_named(self, obj, scope)
        return _MISSING  # an ordinary object such as a route handle

    def _bind_vars(self, names: Json, outer: _Scope) -> _Scope:
        if not isinstance(names, dict):
            _fail(f"vars is {_type_name(names)}, expected object")
        scope = _Scope({k: _Lazy(v) for k, v in names.items()}, outer)
        for name in names:  # all of them, so a broken var is reported even if unused
            self.lookup(name, scope)
        return scope

    def _expand_array(self, items: list, scope: _Scope) -> Json:
        return [self.expand_in(item, scope, i) for i, item in enumerate(items)]


def preprocess(config: dict, params: dict[str, object] | None = None,
               import_resolver: Callable[[str], str] | None = None,
               nested_limit: int = NESTED_LIMIT) -> dict:
    """Expand a parsed mcrouter config: define its "macros", then return the rest with every
    call, %param% and escape resolved. `params` are the global consts (--config-params and the
    like); `import_resolver(path)` returns the text for @import."""
    if not isinstance(config, dict):
        raise ConfigError("config is not an object")
    prep = _Preprocessor(dict(params or {}), import_resolver, nested_limit)
    body = {k: v for k, v in config.items() if k != "macros"}
    try:
        if "macros" in config:
            try:
                prep.define_all(config["macros"])
            except _Error as e:
                raise e.at("macros")
        result = prep.expand(body, _Scope())
        if not isinstance(result, dict):
            _fail("config is not an object")
    except _Error as e:
        raise ConfigError(_describe(e)) from None
    except RecursionError:
        raise ConfigError("Too many nested macros. Check for cycles.") from None
    return _clone(result)
