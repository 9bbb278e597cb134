"""AllInitialRoute: sends the same request to every child and answers with the first child's
reply as soon as it arrives; the other children complete in the background and their replies
are dropped.
"""

from __future__ import annotations

from .base import RouteHandle, child_list, collapse, in_background, register


class AllInitialRoute(RouteHandle):
    name = "all-initial"

    def __init__(self, children: list[RouteHandle]) -> None:
        self.children = children

    def route(self, req, done) -> None:
        first, *rest = self.children
        first.route(req, done)
        for child in rest:
            in_background(child, req)


@register("AllInitialRoute")
def make_all_initial_route(factory, json) -> RouteHandle:
    return collapse(child_list(factory, json), AllInitialRoute)
