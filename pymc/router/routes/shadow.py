"""ShadowRoute: copies part of the traffic to other destinations ("shadows") to try them with
real load. The normal child's reply is the answer; shadow copies are sent as well and their
replies ignored (mcrouter's routes/ShadowRoute.h, ShadowSettings.cpp, makeShadowRoutes).

``{"type": "ShadowRoute", "children": [...], "shadows": [{"target": ..., "index_range": [a, b],
"key_fraction_range": [x, y]}, ...], "shadow_policy": "default"}`` builds the children list with
each child i wrapped in a ShadowRoute over the shadows whose index range holds it
(``a <= i < b``: the end is exclusive, as in mcrouter). A request is copied to a shadow when its
routing key's SpookyHash32 (seed 0) lies within the key fraction range scaled to 32 bits (both
ends included), or, with ``keys_to_shadow``, when its routing key is one of those; then, with
``requests_fraction`` below 1, only that fraction of such requests at random.

pymc extension: ``"default": <handle>`` instead of ``children`` wraps that one handle and
ignores ``index_range`` (every shadow applies). As in mcrouter a malformed shadow entry is
skipped with a warning rather than failing the config, and ``key_fraction_range_rv`` (runtime
vars) is accepted but has no effect. ``make_shadow_routes`` is the same wrapping for other
builders (PoolRoute's ``shadows`` over its destinations).
"""

from __future__ import annotations

import logging
import random

from ..hashing import spooky32
from ..keys import routing_key
from ..ops import key_of
from .base import RouteHandle, in_background, register

logger = logging.getLogger(__name__)

_U32_MAX = 0xFFFFFFFF
_ALWAYS = 1.0 - 0.00001  # mcrouter's kAlwaysSend: skip the dice when the fraction is ~1


class ShadowSettings:
    """Which requests one shadow receives."""

    __slots__ = ("start_index", "end_index", "key_start", "key_end", "keys",
                 "requests_fraction", "random")

    def __init__(self, index_range=(0, 0), key_fraction_range=(0.0, 0.0),
                 keys_to_shadow=(), requests_fraction: float = 1.0,
                 rng: random.Random | None = None) -> None:
        self.start_index, self.end_index = index_range
        self.key_start = int(key_fraction_range[0] * _U32_MAX)
        self.key_end = int(key_fraction_range[1] * _U32_MAX)
        self.keys = frozenset(keys_to_shadow)
        self.requests_fraction = requests_fraction
        self.random = (rng or random.Random()).random

    def covers(self, index: int) -> bool:
        return self.start_index <= index < self.end_index or bool(self.keys)

    def should_shadow(self, req) -> bool:
        key = key_of(req)
        if key:  # keyless requests (meta no-op) pass on requests_fraction alone
            routed = routing_key(key)
            if self.keys:
                if routed not in self.keys:
                    return False
            elif not self.key_start <= spooky32(routed, 0) <= self.key_end:
                return False
        return self.requests_fraction >= _ALWAYS or self.random() < self.requests_fraction


class ShadowRoute(RouteHandle):
    name = "shadow"

    def __init__(self, normal: RouteHandle,
                 shadows: list[tuple[RouteHandle, ShadowSettings]]) -> None:
        self.normal = normal
        self.shadows = shadows
        self.children = [normal] + [target for target, _ in shadows]

    def route(self, req, done) -> None:
        chosen = [target for target, settings in self.shadows if settings.should_shadow(req)]
        # mcrouter queues the shadow copies as fiber tasks that run once the normal request
        # is on its way; sending the normal request first keeps that order.
        self.normal.route(req, done)
        for target in chosen:
            in_background(target, req)


def _pair(value, kind) -> tuple | None:
    ok = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, kind) and not isinstance(v, bool) for v in value)
    return tuple(value) if ok else None


def _settings(shadow) -> ShadowSettings | str:
    """The settings of one shadow entry, or why it is skipped."""
    if not isinstance(shadow, dict):
        return "shadow is not an object"
    if "target" not in shadow:
        return "no target for shadow"
    options: dict = {}
    if "key_fraction_range" in shadow:
        pair = _pair(shadow["key_fraction_range"], (int, float))
        if pair is None:
            return "key_fraction_range is not an array of 2 numbers"
        if not 0 <= pair[0] <= pair[1] <= 1:
            return f"invalid key_fraction_range [{pair[0]}, {pair[1]}]"
        options["key_fraction_range"] = pair
    if "index_range" in shadow:
        pair = _pair(shadow["index_range"], int)
        if pair is None or pair[0] < 0:
            return "index_range is not an array of 2 indexes"
        if pair[0] > pair[1]:
            return "index_range start > end"
        options["index_range"] = pair
    if "key_fraction_range_rv" in shadow and not isinstance(
            shadow["key_fraction_range_rv"], str):
        return "key_fraction_range_rv is not a string"
    if "keys_to_shadow" in shadow:
        keys = shadow["keys_to_shadow"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            return "keys_to_shadow is not an array"
        if keys and any(k in shadow for k in ("index_range", "key_fraction_range",
                                               "key_fraction_range_rv")):
            return ("Cannot mix nonempty keys_to_shadow array with index_range, "
                    "key_fraction_range, or key_fraction_range_rv")
        options["keys_to_shadow"] = [k.encode() for k in keys]
    if "requests_fraction" in shadow:
        fraction = shadow["requests_fraction"]
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool):
            return "requests_fraction is not a double"
        options["requests_fraction"] = float(fraction)
    return ShadowSettings(**options)


def make_shadow_routes(factory, json: dict, children: list[RouteHandle],
                       ignore_index: bool = False) -> list[RouteHandle]:
    """``children`` with each one wrapped in a ShadowRoute over the shadows that cover its
    index (``ignore_index``: every shadow covers every child)."""
    policy = factory.get(json, "shadow_policy", "default", str)
    factory.check("shadows" in json, "ShadowRoute: route doesn't contain shadows field")
    jshadows = json["shadows"]
    if not isinstance(jshadows, list):
        logger.warning("%s: ShadowRoute: shadows specified in route is not an array",
                       factory.path)
        return children
    shadows: list[tuple[RouteHandle, ShadowSettings]] = []
    with factory.at("shadows"):
        for index, shadow in enumerate(jshadows):
            settings = _settings(shadow)
            if isinstance(settings, str):
                logger.warning("%s[%d]: ShadowRoute: %s", factory.path, index, settings)
                continue
            with factory.at(index):
                shadows.append((factory.create(shadow["target"], "target"), settings))
    wrapped = []
    for index, child in enumerate(children):
        mine = [pair for pair in shadows if ignore_index or pair[1].covers(index)]
        if mine:
            factory.check(policy == "default", f"Invalid shadow policy: {policy}")
            child = ShadowRoute(child, mine)
        wrapped.append(child)
    return wrapped


@register("ShadowRoute")
def make_shadow_route(factory, json) -> list[RouteHandle]:
    factory.check(isinstance(json, dict), "ShadowRoute should be an object")
    if "default" in json and "children" not in json:
        children, ignore_index = [factory.create(json["default"], "default")], True
    else:
        factory.check("children" in json, "ShadowRoute: children not found")
        children, ignore_index = factory.create_list(json["children"], "children"), False
    if "shadows" not in json:
        return children
    return make_shadow_routes(factory, json, children, ignore_index)
