"""DevNullRoute: answers like NullRoute (a miss, NOT_STORED, NOT_FOUND) without sending
anything, and counts what it swallowed in ``DevNullRoute.dev_null_requests`` (mcrouter's
``dev_null_requests`` stat)."""

from __future__ import annotations

from ..results import default_reply
from .base import RouteHandle, register


class DevNullRoute(RouteHandle):
    name = "devnull"
    #: Requests answered by any DevNullRoute since start; class-level so the count survives
    #: config reloads, as mcrouter's proxy stats do. Stats read it from here.
    dev_null_requests = 0

    def route(self, req, done) -> None:
        DevNullRoute.dev_null_requests += 1
        done(default_reply(req))


@register("DevNullRoute")
def make_dev_null_route(factory, json) -> RouteHandle:
    return DevNullRoute()
