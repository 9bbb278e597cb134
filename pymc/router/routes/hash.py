"""HashRoute: sends each request to one of its children, chosen by hashing the key's routing
key (plus ``salt``) with ``hash_func``: Ch3 (default), Crc32, WeightedCh3 (``weights``) or
ConstShard, bit for bit as mcrouter's HashRouteFactory/HashSelector do. PoolRoute is this route
over a pool's destinations.

As in mcrouter: one child is that child, with no hashing; no children is an ErrorRoute
("HashRoute with empty children, name: ...") unless ``"error_on_empty": false`` makes it a
NullRoute; ``"hash_func": "Latest"`` builds a LatestRoute instead. ``make_selector`` is the
reusable key → index function.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..hashing import HASH_FUNCTIONS, MAX_POOL_SIZE, weighted_ch3
from ..jsonc import ConfigError
from ..keys import routing_key
from ..ops import key_of
from .base import RouteHandle, child_list, register
from .error import ErrorRoute
from .null import NullRoute

#: A selector's memo is dropped when it grows past this (pure-Python Ch3 costs ~7 µs a key,
#: a dict hit well under 0.1 µs; clearing keeps memory bounded without LRU bookkeeping).
MEMO_LIMIT = 65536

#: mcrouter hash functions pymc-router does not implement (they need runtime vars, endpoint
#: tags or load data): named in the error instead of "Unknown hash function".
UNSUPPORTED = frozenset(("WeightedCh3Rv", "Rendezvous", "WeightedRendezvous", "LoadBalancer"))

Selector = Callable[[bytes], int]


def make_selector(hash_func: str = "Ch3", salt: str | bytes = "",
                  weights: Sequence[float] | None = None, n: int | None = None) -> Selector:
    """A function from a request's *full* key (routing prefix and all) to a child index in
    ``range(n)``: the routing key, with ``salt`` appended, hashed by ``hash_func``. For
    WeightedCh3 ``n`` defaults to ``len(weights)``. Raises ConfigError for a bad combination."""
    if isinstance(salt, str):
        salt = salt.encode()
    if hash_func == "WeightedCh3":
        if weights is None:
            raise ConfigError("WeightedChHashFunc: not an object or no weights")
        if n is None:
            n = len(weights)
        if n != len(weights) or not 0 < n <= MAX_POOL_SIZE:
            raise ConfigError(f"Invalid pool size: {n}")
        fixed = list(weights)

        def compute(key: bytes) -> int:
            return weighted_ch3(key, fixed)
    elif hash_func in HASH_FUNCTIONS:
        function = HASH_FUNCTIONS[hash_func]
        if n is None or not 0 < n <= MAX_POOL_SIZE:
            raise ConfigError(f"Pool size out of range for {hash_func}")
        size = n

        def compute(key: bytes) -> int:
            return function(key, size)
    elif hash_func in UNSUPPORTED:
        raise ConfigError(f"hash function {hash_func} is not supported by pymc-router")
    else:
        raise ConfigError(f"Unknown hash function: {hash_func}")

    memo: dict[bytes, int] = {}

    def select(full_key: bytes) -> int:
        index = memo.get(full_key)
        if index is None:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            index = memo[full_key] = compute(routing_key(full_key) + salt)
        return index

    return select


def selector_name(hash_func: str, salt: str) -> str:
    """mcrouter's SelectionRoute name: ``selection|hash|Ch3`` (``|salt=...`` when salted)."""
    return f"selection|hash|{hash_func}" + (f"|salt={salt}" if salt else "")


def parse_weights(factory, json, n: int) -> list[float]:
    """``weights`` as mcrouter's WeightedChHashFuncBase::parseWeights reads them: numbers in
    [0, 1]; extra ones ignored, missing ones 0.5 (mcrouter logs "CONFIG IS BROKEN")."""
    factory.check(isinstance(json, dict) and "weights" in json,
                  "WeightedChHashFunc: not an object or no weights")
    jweights = json["weights"]
    factory.check(isinstance(jweights, list), "WeightedChHashFunc: weights is not array")
    weights: list[float] = []
    for weight in jweights[:n]:
        factory.check(isinstance(weight, (int, float)) and not isinstance(weight, bool),
                      "WeightedChHashFunc: weight is not number")
        factory.check(0 <= weight <= 1.0,
                      "WeightedChHashFunc: weight must be in range [0, 1.0]")
        weights.append(float(weight))
    return weights + [0.5] * (n - len(weights))


class HashRoute(RouteHandle):
    def __init__(self, children: list[RouteHandle], select: Selector, name: str) -> None:
        self.children = children
        self.select = select
        self.name = name

    def route(self, req, done) -> None:
        self.children[self.select(key_of(req))].route(req, done)

    def traverse(self, req) -> list[RouteHandle]:
        return [self.children[self.select(key_of(req))]]

    def resolve(self, op: str, key: bytes):
        return self.children[self.select(key)].resolve(op, key)


@register("HashRoute")
def make_hash_route(factory, json) -> RouteHandle:
    salt = factory.get(json, "salt", "", str)
    hash_func = factory.get(json, "hash_func", "Ch3", str)
    if factory.get(json, "bucketize", False, bool):
        raise factory.error("HashRoute: bucketize is not supported by pymc-router")
    children = child_list(factory, json)
    if not children:
        if factory.get(json, "error_on_empty", True, bool):
            name = json.get("name", "") if isinstance(json, dict) else ""
            return ErrorRoute(f"HashRoute with empty children, name: {name}")
        return NullRoute()
    if len(children) == 1:
        return children[0]
    if hash_func == "Latest":
        from .latest import make_latest_from_children  # latest imports this module
        return make_latest_from_children(factory, json, children)
    weights = parse_weights(factory, json, len(children)) if hash_func == "WeightedCh3" \
        else None
    # make_selector's ConfigError gets this route's path from the factory.
    select = make_selector(hash_func, salt, weights, len(children))
    return HashRoute(children, select, selector_name(hash_func, salt))
