"""AllAsyncRoute: sends the same request to every child and answers at once with the default
reply (NOT_STORED for updates, a miss for gets, NOT_FOUND otherwise) without waiting; the
children's replies are dropped. Used for best-effort copies, e.g. to a remote datacenter.
"""

from __future__ import annotations

from ..results import default_reply
from .base import RouteHandle, child_list, in_background, register


class AllAsyncRoute(RouteHandle):
    name = "all-async"

    def __init__(self, children: list[RouteHandle]) -> None:
        self.children = children

    def route(self, req, done) -> None:
        for child in self.children:
            in_background(child, req)
        done(default_reply(req))


@register("AllAsyncRoute")
def make_all_async_route(factory, json) -> RouteHandle:
    children = child_list(factory, json)
    if not children:
        from .null import NullRoute
        return NullRoute()
    # Unlike the other All* routes, one child is kept behind AllAsync: answering without
    # waiting is the point, so collapsing to the child would change behaviour.
    return AllAsyncRoute(children)
