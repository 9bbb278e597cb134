"""HostIdRoute: every request goes to one child fixed per host, ``children[host_id % n]``, so a
fleet of routers spreads over the children while each one always uses the same child.

As in mcrouter (HostIdRouteFactory.h) the choice is made when the config is built and the
builder returns that child itself: HostIdRoute never shows up in the route tree. The host id is
the factory's ``options.host_id`` (``options.default_host_id()`` without options). A ``salt``
mixes a string in (our own crc32 mix, not folly's hash; mcrouter's host ids differ anyway).
No children → NullRoute.
"""

from __future__ import annotations

import zlib

from ..options import default_host_id
from .base import RouteHandle, child_list, register
from .null import NullRoute


def host_id_of(factory) -> int:
    options = factory.options
    return options.host_id if options is not None else default_host_id()


def pick_for_host(children: list, host_id: int, salt: str = ""):
    """The child this host uses."""
    if salt:
        host_id = zlib.crc32(b"%d|" % host_id + salt.encode())
    return children[host_id % len(children)]


@register("HostIdRoute")
def make_host_id_route(factory, json) -> RouteHandle:
    salt = factory.get(json, "salt", "", str)
    children = child_list(factory, json)
    if not children:
        return NullRoute()
    return pick_for_host(children, host_id_of(factory), salt)
