"""NullRoute: answers every request with the default reply (a miss, NOT_STORED, NOT_FOUND)
without sending anything."""

from __future__ import annotations

from ..results import default_reply
from .base import RouteHandle, register


class NullRoute(RouteHandle):
    name = "null"

    def route(self, req, done) -> None:
        done(default_reply(req))


@register("NullRoute")
def make_null_route(factory, json) -> RouteHandle:
    return NullRoute()
