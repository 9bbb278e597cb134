"""FailoverRoute: sends the request to its children one at a time, in order, moving on only
when the reply's result is a failover error for the request's operation class (gets, updates,
deletes; see ``failover_errors``); the first other reply is the answer, and if every child
fails the last child's reply is. A miss is an answer, never a reason to fail over.
``failover_limit`` ({"rate", "burst"}) caps failovers to a fraction of all requests.

``make_failover`` builds one over any child list, so FailoverWithExptimeRoute shares it.
"""

from __future__ import annotations

from ..ops import op_class, operation
from ..results import DEFAULT_FAILOVER_ERRORS, ERRORS, result_of
from .base import RouteHandle, child_list, collapse, register

#: Results where the destination was known down and did no work: these failovers are not
#: charged to failover_limit (mcrouter's isTkoOrHardTkoResult).
_NO_WORK_DONE = frozenset(("tko", "connect_error", "connect_timeout", "shutdown"))


class FailoverErrors:
    """Which results move a request on, per operation class. Other operations (incr, touch,
    ...) always use the default list, as in mcrouter."""

    __slots__ = ("by_class",)

    def __init__(self, gets=DEFAULT_FAILOVER_ERRORS, updates=DEFAULT_FAILOVER_ERRORS,
                 deletes=DEFAULT_FAILOVER_ERRORS) -> None:
        self.by_class = {"gets": frozenset(gets), "updates": frozenset(updates),
                         "deletes": frozenset(deletes), "other": DEFAULT_FAILOVER_ERRORS}

    def for_request(self, req) -> frozenset:
        return self.by_class[op_class(operation(req))]


class FailoverRateLimiter:
    """mcrouter's failover_limit: a token bucket whose clock is the number of requests routed,
    so ``rate`` 0.5 allows failing over at most half of them, with ``burst`` failovers banked
    (a full bucket at the start)."""

    __slots__ = ("rate", "burst", "requests", "zero")

    def __init__(self, rate: float, burst: float = 1000.0) -> None:
        self.rate = min(max(rate, 0.0), 1.0)
        self.burst = max(burst, 1.0)
        self.requests = 0
        self.zero = -1e6  # far in the past: the bucket starts full

    def count_request(self) -> None:
        self.requests += 1

    def allow(self) -> bool:
        tokens = min((self.requests - self.zero) * self.rate, self.burst)
        if tokens < 1:
            return False
        self.zero = self.requests - (tokens - 1) / self.rate
        return True


class FailoverRoute(RouteHandle):
    def __init__(self, children: list[RouteHandle], errors: FailoverErrors | None = None,
                 limiter: FailoverRateLimiter | None = None, name: str = "") -> None:
        self.children = children
        self.errors = errors or FailoverErrors()
        self.limiter = limiter
        # mcrouter appends the target count so lease pairing can tell configs apart.
        self.name = f"failover:{name}:failover_targets={len(children)}" if name else "failover"

    def route(self, req, done) -> None:
        children = self.children
        last = len(children) - 1
        errors = self.errors.for_request(req)
        limiter = self.limiter
        if limiter is not None:
            limiter.count_request()
        index = 0

        def answer(reply) -> None:
            nonlocal index
            if index == last:
                done(reply)
                return
            result = result_of(reply, req)
            if result not in errors or (limiter is not None and result not in _NO_WORK_DONE
                                        and not limiter.allow()):
                done(reply)
                return
            index += 1
            children[index].route(req, answer)

        children[0].route(req, answer)

    def resolve(self, op: str, key: bytes):
        # The normal child; an error reply re-routes the key through route() (see base).
        return self.children[0].resolve(op, key) if self.limiter is None else None

    def fixed(self, op: str):
        return self.children[0].fixed(op) if self.limiter is None else None


def parse_failover_errors(factory, json) -> FailoverErrors:
    """``failover_errors``: a list for every class, or {"gets", "updates", "deletes"}."""
    with factory.at("failover_errors"):
        if isinstance(json, list):
            names = _error_names(factory, json)
            return FailoverErrors(names, names, names)
        factory.check(isinstance(json, dict),
                      "Failover errors must be either an array or an object.")
        lists = {}
        for op_kind in ("gets", "updates", "deletes"):
            if op_kind in json:
                with factory.at(op_kind):
                    lists[op_kind] = _error_names(factory, json[op_kind])
        return FailoverErrors(**lists)


def _error_names(factory, json) -> frozenset:
    factory.check(isinstance(json, list), "List of failover errors is not an array.")
    for name in json:
        factory.check(isinstance(name, str), f"Failover error {name!r} is not a string")
        # mcrouter accepts any error result here, written without "mc_res_".
        factory.check(name in ERRORS,
                      f"Failover error '{name}' is not a valid error type.")
    return frozenset(json)


def parse_failover_limit(factory, json) -> FailoverRateLimiter:
    with factory.at("failover_limit"):
        factory.check(isinstance(json, dict), "failover limit is not an object")
        rate = factory.require(json, "rate", (int, float), "a number")
        burst = factory.get(json, "burst", 1000.0, (int, float), "a number")
        return FailoverRateLimiter(float(rate), float(burst))


def make_failover(factory, json, children: list[RouteHandle]) -> RouteHandle:
    """A FailoverRoute over ``children`` with the options in ``json`` (an object, or the
    short form's string, which has none)."""
    if not isinstance(json, dict):
        return collapse(children, FailoverRoute)
    errors = parse_failover_errors(factory, json["failover_errors"]) \
        if "failover_errors" in json else None
    policy = json.get("failover_policy")
    if policy is not None:
        # Accepted so mcrouter configs load; children are always tried in order.
        with factory.at("failover_policy"):
            factory.check(isinstance(policy, dict), "failover_policy is not object")
            factory.check("type" in policy, "failover_policy object is missing 'type' field")
    limiter = parse_failover_limit(factory, json["failover_limit"]) \
        if "failover_limit" in json else None
    factory.get(json, "failover_tag", False, bool)  # hop counts are not kept; checked only
    lease_pairing = factory.get(json, "enable_lease_pairing", False, bool)
    name = factory.get(json, "name", "", str)
    factory.check(name or not lease_pairing,
                  "Failover: name is required when lease pairing is enabled")
    return collapse(children, lambda many: FailoverRoute(many, errors, limiter, name))


@register("FailoverRoute")
def make_failover_route(factory, json) -> RouteHandle:
    return make_failover(factory, json, child_list(factory, json))
