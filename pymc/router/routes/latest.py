"""LatestRoute: each host picks ``failover_count`` (default 5) of the children, in an order
seeded by its host id (and ``salt``), and fails over among them: the result is a FailoverRoute
over the picked children (``failover.make_failover``), so ``failover_errors``,
``failover_limit`` and ``name`` mean what they mean there. ``weights`` make the pick weighted.
Zero picked children → NullRoute, one → that child.

mcrouter (routes/LatestRoute.h) hashes the host id with folly's hash_combine and picks each
target with WeightedCh3 over the decimal text of that hash, removing picked targets by
swapping the last one into their place. We follow those steps with our own 64-bit mix instead
of folly's, so the chosen children differ from mcrouter's for the same host id (mcrouter's host
ids differ from ours anyway). ``thread_local_failover`` is not replicated (one thread here).
"""

from __future__ import annotations

import zlib

from ..hashing import M64, weighted_ch3
from .base import RouteHandle, child_list, register
from .failover import make_failover
from .hash import parse_weights
from .host_id import host_id_of

DEFAULT_FAILOVER_COUNT = 5
_KMUL = 0x9DDFEA08EB382D69


def _combine(seed: int, value: int) -> int:
    """Mix ``value`` into ``seed`` (the 128→64 bit mix folly's hash_combine builds on)."""
    a = ((value ^ seed) * _KMUL) & M64
    a ^= a >> 47
    b = ((seed ^ a) * _KMUL) & M64
    b ^= b >> 47
    return (b * _KMUL) & M64


def pick_targets(children: list, count: int, host_id: int, weights: list[float],
                 salt: str = "") -> list:
    """The ``count`` children this host fails over among, in order."""
    if len(children) <= 1:
        return list(children)
    targets, weights = list(children), list(weights)
    count = len(targets) if count < 0 else min(count, len(targets))
    hash_key = _combine(0, host_id)
    if salt:
        hash_key = _combine(hash_key, zlib.crc32(salt.encode()))
    picked = []
    for i in range(count):
        index = weighted_ch3(str(hash_key).encode(), weights)
        picked.append(targets[index])
        targets[index], weights[index] = targets[-1], weights[-1]
        targets.pop()
        weights.pop()
        hash_key = _combine(hash_key, i)
    return picked


def make_latest_from_children(factory, json, children: list[RouteHandle]) -> RouteHandle:
    """LatestRoute over already built children (also HashRoute's ``"hash_func": "Latest"``)."""
    count = factory.get(json, "failover_count", DEFAULT_FAILOVER_COUNT, int,
                        "an integer")
    salt = factory.get(json, "salt", "", str)
    if isinstance(json, dict) and "weights" in json:
        weights = parse_weights(factory, json, len(children))
    else:
        weights = [1.0] * len(children)
    targets = pick_targets(children, count, host_id_of(factory), weights, salt)
    return make_failover(factory, json, targets)


@register("LatestRoute")
def make_latest_route(factory, json) -> RouteHandle:
    return make_latest_from_children(factory, json, child_list(factory, json))
