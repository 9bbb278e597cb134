"""MissFailoverRoute: for gets and deletes, tries its children in order until one answers
with a hit (found, deleted, touched or ok); if none does, answers with the last child's reply,
or with ``return_best_on_error`` the least severe reply seen (the later on ties), so a miss from
a healthy host beats an error from a broken one. Other operations go to the first child only.
"""

from __future__ import annotations

from ..ops import DELETES, GETS, operation
from ..results import result_of, severity
from .base import RouteHandle, child_list, collapse, register

#: Results that end the search (mcrouter: isHitResult, or ok).
_HITS = frozenset(("found", "deleted", "touched", "ok"))


class MissFailoverRoute(RouteHandle):
    name = "miss-failover"

    def __init__(self, children: list[RouteHandle], return_best_on_error: bool = False) -> None:
        self.children = children
        self.return_best_on_error = return_best_on_error

    def route(self, req, done) -> None:
        children = self.children
        op = operation(req)
        if op not in GETS and op not in DELETES:
            children[0].route(req, done)
            return
        best = None
        index = 0

        def answer(reply) -> None:
            nonlocal best, index
            result = result_of(reply, req)
            if result in _HITS:
                done(reply)
                return
            if (best is None or not self.return_best_on_error
                    or severity(result) <= severity(result_of(best, req))):
                best = reply
            index += 1
            if index == len(children):
                done(best)
            else:
                children[index].route(req, answer)

        children[0].route(req, answer)


@register("MissFailoverRoute")
def make_miss_failover_route(factory, json) -> RouteHandle:
    best = factory.get(json, "return_best_on_error", False, bool)
    return collapse(child_list(factory, json), lambda many: MissFailoverRoute(many, best))
