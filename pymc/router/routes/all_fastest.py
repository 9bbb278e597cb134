"""AllFastestRoute: sends the same request to every child and answers with the first reply that
is not a failover error (mcrouter's isFailoverErrorResult: timeout, tko, busy, ...); if every
child fails, with the last error to arrive. The slower children complete in the background.
"""

from __future__ import annotations

from ..results import DEFAULT_FAILOVER_ERRORS, result_of
from .all_sync import child_list
from .base import RouteHandle, collapse, register


class AllFastestRoute(RouteHandle):
    name = "all-fastest"

    def __init__(self, children: list[RouteHandle]) -> None:
        self.children = children

    def route(self, req, done) -> None:
        waiting = len(self.children)
        answered = False

        def arrived(reply) -> None:
            nonlocal waiting, answered
            waiting -= 1
            if answered:
                return
            if result_of(reply, req) not in DEFAULT_FAILOVER_ERRORS or not waiting:
                answered = True
                done(reply)

        for child in self.children:
            child.route(req, arrived)


@register("AllFastestRoute")
def make_all_fastest_route(factory, json) -> RouteHandle:
    return collapse(child_list(factory, json), AllFastestRoute)
