"""AllSyncRoute: sends the same request to every child, waits for all of them and answers with
the "most awful" reply (highest severity in mcrouter's lib/McResUtil.h order; among equally bad
replies, the first child's). Used to write to several places at once and hear about any failure.
"""

from __future__ import annotations

from ..results import worst
from .base import Gather, RouteHandle, child_list, collapse, register


class AllSyncRoute(RouteHandle):
    name = "all-sync"

    def __init__(self, children: list[RouteHandle]) -> None:
        self.children = children

    def route(self, req, done) -> None:
        gather = Gather(len(self.children), lambda replies: done(worst(replies, req)))
        for index, child in enumerate(self.children):
            child.route(req, gather.slot(index))


@register("AllSyncRoute")
def make_all_sync_route(factory, json) -> RouteHandle:
    return collapse(child_list(factory, json), AllSyncRoute)
