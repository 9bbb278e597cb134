"""PrefixSelectorRoute: picks the child by key prefix. ``policies`` maps key prefixes to
handles; a request goes to the handle of the longest prefix its routing key starts with, else to
``wildcard``. With neither, the answer is mcrouter's ``SERVER_ERROR RootRoute: No rh found``.

The key matched is the routing key (no routing prefix, cut at the hash stop ``|#|``), as
mcrouter's RootRoute passes it. mcrouter only reads this type as the top of a route (its
RouteHandleMap builds the prefix map); here it is an ordinary handle and may appear anywhere.
"""

from __future__ import annotations

from ..keys import routing_key
from ..ops import key_of
from ..results import ErrorReply
from .base import RouteHandle, SelectorRoute, register

NO_ROUTE = "RootRoute: No rh found"


class PrefixSelectorRoute(SelectorRoute):
    name = "prefix-selector"

    def __init__(self, policies: dict[bytes, RouteHandle],
                 wildcard: RouteHandle | None = None) -> None:
        super().__init__(policies, wildcard)
        # Only the lengths that exist are tried, longest first: a dict probe per length.
        self._lengths = sorted({len(prefix) for prefix in policies}, reverse=True)

    def select(self, req) -> RouteHandle | None:
        return self.select_key(key_of(req))

    def unrouted(self) -> ErrorReply:
        return ErrorReply("local_error", NO_ROUTE)

    def resolve(self, op: str, key: bytes):
        child = self.select_key(key)
        return child.resolve(op, key) if child is not None else None

    def select_key(self, full_key: bytes) -> RouteHandle | None:
        key = routing_key(full_key)
        policies = self.policies
        for length in self._lengths:
            if length <= len(key):
                child = policies.get(key[:length])
                if child is not None:
                    return child
        return self.fallback


@register("PrefixSelectorRoute")
def make_prefix_selector_route(factory, json) -> RouteHandle:
    factory.check(isinstance(json, dict), "PrefixSelectorRoute should be an object")
    factory.check("policies" in json or "wildcard" in json,
                  "PrefixSelectorRoute: no policies/wildcard")
    policies: dict[bytes, RouteHandle] = {}
    if "policies" in json:
        jpolicies = json["policies"]
        factory.check(isinstance(jpolicies, dict),
                      "PrefixSelectorRoute: policies is not an object")
        with factory.at("policies"):
            # mcrouter builds them in sorted key order, which decides named-handle definitions
            for prefix in sorted(jpolicies):
                policies[prefix.encode()] = factory.create(jpolicies[prefix], prefix)
    wildcard = factory.create(json["wildcard"], "wildcard") if "wildcard" in json else None
    return PrefixSelectorRoute(policies, wildcard)
