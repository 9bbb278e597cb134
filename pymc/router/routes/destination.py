"""DestinationRoute: the leaf that hands a request to one backend server (a pool member).

It strips the routing prefix from the key unless the pool keeps it (``keep_routing_prefix``).
While ``RECORDER`` is set (``__mcrouter__.route(op,key)``) nothing is sent: the destination is
recorded and the default reply returned, so the route tree behaves as if every server answered
normally — except a TKO server, which answers its fast-fail error first (as in mcrouter), so
the recording shows where failover sends the request.
"""

from __future__ import annotations

from ..keys import RoutedKey
from ..ops import key_of, with_key
from ..results import default_reply
from .base import RouteHandle

#: A list collecting destinations instead of sending, or None.
RECORDER: list | None = None
#: Destinations that already answered the request being re-routed (destination → reply):
#: the proxy's batched gets set this while sending a failed batch through the full tree, so
#: failover moves on without asking the failed server twice.
ANSWERED: dict | None = None


class DestinationRoute(RouteHandle):
    def __init__(self, destination, pool_name: str, index: int, keep_routing_prefix: bool,
                 timeout_ms: int) -> None:
        self.destination = destination
        self.pool_name = pool_name
        self.index = index
        self.keep_routing_prefix = keep_routing_prefix
        ap = destination.access_point
        self.name = (f"host|pool={pool_name}|id={index}|ap={ap}:{ap.protocol}:{ap.security}:"
                     f"{'compressed' if ap.compressed else 'notcompressed'}|"
                     f"timeout={timeout_ms}ms|keep_routing_prefix={int(keep_routing_prefix)}")

    def resolve(self, op: str, key: bytes):
        return self

    def fixed(self, op: str):
        return self

    def route(self, req, done) -> None:
        if RECORDER is not None:
            if self.destination.tko.is_tko:
                self.destination.send(req, done)  # answered at once, nothing sent
                return
            RECORDER.append(self.destination)
            done(default_reply(req))
            return
        if ANSWERED is not None and self.destination in ANSWERED:
            done(ANSWERED[self.destination])
            return
        if not self.keep_routing_prefix:
            key = key_of(req)
            if key[:1] == b"/":
                routed = RoutedKey(key)
                if routed.prefix:
                    req = with_key(req, routed.without_route)
        self.destination.send(req, done)
