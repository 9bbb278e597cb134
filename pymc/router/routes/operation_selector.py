"""OperationSelectorRoute (also "PrefixPolicyRoute"): sends each request to the child named
for its operation in ``operation_policies`` (get, set, delete, ...; meta commands count as the
operation they perform), else to ``default_policy``. With neither for an operation the reply
is mcrouter's empty reply, an "unknown" error.
"""

from __future__ import annotations

from ..ops import operation
from ..results import ErrorReply
from .base import RouteHandle, SelectorRoute, register

#: Operation names operation_policies may use (mcrouter's routable requests).
OPERATIONS = ("add", "append", "cas", "decr", "delete", "flushall", "flushre", "gat", "gats",
              "get", "gets", "incr", "lease-get", "lease-set", "metaget", "prepend", "replace",
              "set", "touch")


class OperationSelectorRoute(SelectorRoute):
    name = "operation-selector"

    def select(self, req) -> RouteHandle | None:
        return self.policies.get(operation(req), self.fallback)

    def unrouted(self) -> ErrorReply:
        return ErrorReply("unknown")

    def resolve(self, op: str, key: bytes):
        child = self.policies.get(op, self.fallback)
        return child.resolve(op, key) if child is not None else None

    def fixed(self, op: str):
        child = self.policies.get(op, self.fallback)
        return child.fixed(op) if child is not None else None


@register("OperationSelectorRoute", "PrefixPolicyRoute")
def make_operation_selector_route(factory, json) -> RouteHandle:
    if not isinstance(json, dict):
        return factory.create(json)  # "OperationSelectorRoute|X" is just X
    factory.check("default_policy" in json or "operation_policies" in json,
                  "OperationSelectorRoute needs either 'default_policy' "
                  "or 'operation_policies'")
    default = factory.create(json["default_policy"], "default_policy") \
        if "default_policy" in json else None
    if "operation_policies" not in json:
        return default
    policies_json = json["operation_policies"]
    with factory.at("operation_policies"):
        factory.check(isinstance(policies_json, dict), "operation_policies is not an object")
        policies = {}
        # Sorted as mcrouter does, so named handles resolve in the same order.
        for op in sorted(policies_json):
            factory.check(op in OPERATIONS, f"Unknown operation: {op}, valid operations: "
                          + ", ".join(OPERATIONS))
            policies[op] = factory.create(policies_json[op], op)
    return OperationSelectorRoute(policies, default)
