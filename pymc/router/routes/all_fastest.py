"""AllFastestRoute: sends the same request to every child and answers with the first reply that
is not a failover error (mcrouter's isFailoverErrorResult: timeout, tko, busy, ...); if every
child fails, with the last error to arrive. The slower children complete in the background.
"""

from __future__ import annotations

from ..results import DEFAULT_FAILOVER_ERRORS, result_of
from .base import RouteHandle, answer_early, child_list, collapse, register


class AllFastestRoute(RouteHandle):
    name = "all-fastest"

    def __init__(self, children: list[RouteHandle]) -> None:
        self.children = children

    def route(self, req, done) -> None:
        def settle(reply, last: bool):
            if last or result_of(reply, req) not in DEFAULT_FAILOVER_ERRORS:
                return reply
            return None

        answer_early(self.children, req, done, settle)


@register("AllFastestRoute")
def make_all_fastest_route(factory, json) -> RouteHandle:
    return collapse(child_list(factory, json), AllFastestRoute)
