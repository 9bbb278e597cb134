"""Built-ins over data: @hash and @weightedHash (with the hashes behind them), the casts @int,
@double, @str and @bool, and the collection functions (keys, values, merge, select, shuffle,
slice, split, range, contains, empty, size, sort, set).
"""

from __future__ import annotations

import random
from functools import cmp_to_key
from typing import Callable

from pymc.router.hashing import spooky64

from .calls import _Args, _BuiltinTable, _opt
from .errors import _fail
from .values import (_M64, Json, _as_bool, _as_double, _as_int, _as_string, _equal, _is_int,
                     _is_number, _less, _signed64, _type_name)


# -- hashes used by @hash and weightedHash ------------------------------------------------------

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


# -- built-ins ----------------------------------------------------------------------------------

def _b_hash(a: _Args) -> Json:
    v = a["value"]
    if _is_int(v):
        return _signed64(_twang_mix64(v))
    if isinstance(v, str):
        return _signed64(spooky64(v.encode(), 0))
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
        key_hash = spooky64(key.encode(), 0)
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


#: The most numbers @range makes: far more than any config lists, and a typo such as
#: ``"to": 10000000000`` fails here instead of exhausting the router's memory.
RANGE_LIMIT = 1 << 20


def _b_range(a: _Args) -> Json:
    if not _is_int(a["from"]):
        _fail("Range: from is not an integer")
    if not _is_int(a["to"]):
        _fail("Range: to is not an integer")
    count = a["to"] - a["from"] + 1
    if count > RANGE_LIMIT:
        _fail(f"Range: {count} numbers from {a['from']} to {a['to']}, more than {RANGE_LIMIT}")
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


def _b_sort(a: _Args) -> Json:
    d = a["dictionary"]
    if not isinstance(d, list):
        _fail("sort: dictionary is not an array")
    return sorted(d, key=cmp_to_key(lambda x, y: -1 if _less(x, y) else int(_less(y, x))))


_DATA_BUILTINS: _BuiltinTable = {
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
    "size": (["dictionary"], lambda a: len(_sized(a, "size")), False),
    "sort": (["dictionary"], _b_sort, False),
    "set": (["dictionary", "key", "value"], _b_set, False),
}
