"""AllMajorityRoute: sends the same request to every child and collects replies until one
result (found, stored, timeout, ...) has come from a majority (n/2 + 1) of the children, or
until all have answered. It answers with the reply that last raised the leading result's count;
when results tie on count, the worse one (by severity) leads, and the earlier leader keeps a tie
of equal severity. Replies arriving after the answer are dropped.
"""

from __future__ import annotations

from ..results import result_of, severity
from .base import RouteHandle, answer_early, child_list, collapse, register


class AllMajorityRoute(RouteHandle):
    name = "all-majority"

    def __init__(self, children: list[RouteHandle]) -> None:
        self.children = children

    def route(self, req, done) -> None:
        needed = len(self.children) // 2 + 1
        counts: dict[str, int] = {}
        leader, lead = None, 0  # the reply we would answer with, and its result's count

        def settle(reply, last: bool):
            nonlocal leader, lead
            result = result_of(reply, req)
            count = counts[result] = counts.get(result, 0) + 1
            # mcrouter's update rule, applied in arrival order.
            if count > lead or (count == lead
                                and severity(result) > severity(result_of(leader, req))):
                leader, lead = reply, count
            return leader if lead >= needed or last else None

        answer_early(self.children, req, done, settle)


@register("AllMajorityRoute")
def make_all_majority_route(factory, json) -> RouteHandle:
    return collapse(child_list(factory, json), AllMajorityRoute)
