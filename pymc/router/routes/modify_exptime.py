"""ModifyExptimeRoute: changes the exptime of requests that carry one before passing them to
its target. Action "set" replaces it with the configured value; "min" lowers it to the
configured value when it is longer, where 0 (never expire) counts as longest and so does an
absolute unix time, which is always larger than a relative one. Deletes, plain gets and
arithmetic pass through untouched. The request is copied, never changed in place.
"""

from __future__ import annotations

from ..ops import DELETES, UPDATES, exptime_of, operation, with_exptime
from .base import RouteHandle, register

ACTIONS = ("set", "min")

#: Operations whose exptime mcrouter leaves alone: deletes (by rule) and incr/decr (they have
#: no exptime in mcrouter, even when a meta ``ma`` carries ``T``).
_UNTOUCHED = DELETES | frozenset(("incr", "decr"))


def request_exptime(req) -> int | None:
    """The exptime ModifyExptimeRoute sees, or None when the request has none to change."""
    op = operation(req)
    if op in _UNTOUCHED:
        return None
    exptime = exptime_of(req)
    if exptime is None and op in UPDATES:
        return 0  # a meta ms without T stores forever, like exptime 0
    return exptime


class ModifyExptimeRoute(RouteHandle):
    def __init__(self, target: RouteHandle, exptime: int, action: str = "set") -> None:
        self.target = target
        self.children = [target]
        self.exptime = exptime
        self.action = action
        self.name = f"modify-exptime|{action}|exptime={exptime}"

    def resolve(self, op: str, key: bytes):
        return self.target.resolve(op, key)  # plain gets carry no exptime

    def fixed(self, op: str):
        return self.target.fixed(op)

    def route(self, req, done) -> None:
        current = request_exptime(req)
        if current is not None and current != self.exptime and (
                self.action == "set" or current == 0 or current > self.exptime):
            req = with_exptime(req, self.exptime)
        self.target.route(req, done)


@register("ModifyExptimeRoute")
def make_modify_exptime_route(factory, json) -> RouteHandle:
    factory.check(isinstance(json, dict), "ModifyExptimeRoute: should be an object")
    target = factory.create(factory.require(json, "target"), "target")
    exptime = factory.require(json, "exptime", int, "an integer")
    action = factory.get(json, "action", "set", str)
    factory.check(action in ACTIONS, "ModifyExptimeRoute: action should be 'set' or 'min'")
    if action == "min" and exptime == 0:
        return target  # min(x, forever) is x
    return ModifyExptimeRoute(target, exptime, action)
