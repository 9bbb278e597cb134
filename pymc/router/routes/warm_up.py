"""WarmUpRoute: lets a new ("cold") pool take over from an old ("warm") one without a wave of
misses. Reads try cold first; a cold miss is looked up in warm, and a warm hit is copied into
cold with ``add`` (exptime ``exptime``, default 0) so the next read hits cold. Writes, deletes
and everything else go to cold only: the client keeps warm consistent (mcrouter's
routes/WarmUpRoute.h).

Per operation, as mcrouter does it:
- get: cold; on a miss, warm's reply is the answer; a warm hit is ``add``-ed to cold in the
  background.
- gets / gat / gats: cold; on a miss a plain ``get`` goes to warm; on a warm hit the value is
  ``add``-ed to cold (gat/gats with their own exptime), then the original request is sent to
  cold again so the client gets a cold cas; on a warm miss the cold reply is the answer.
- metaget: cold; on a miss, warm's reply.
- meta ``mg`` (pymc's own, mcrouter has no meta protocol): like get. The answer is warm's reply;
  cold is warmed in the background only when that reply carries a value (``v``), with the
  client flags from ``f`` when returned (else 0).

Not replicated: lease-get (sent to cold only: the router does not pair lease tokens across
pools) and ``enable_metaget`` (reading the exptime from warm with metaget, which memcached no
longer has): a missing ``exptime`` means 0.
"""

from __future__ import annotations

from ...protocol.messages import Request
from ...protocol.meta import MetaRequest, MetaReply
from ..ops import key_of, operation
from ..results import is_hit
from .base import RouteHandle, in_background, register


def add_request(key: bytes, flags: int, data: bytes, exptime: int) -> Request:
    return Request(b"add", [key], flags, exptime, data)


def _value_of(reply):
    """(flags, data) of a hit, or None when the reply carries no value (a miss, an error, a
    meta hit without ``v``)."""
    if type(reply) is MetaReply:
        if reply.code != b"VA" or reply.value is None:
            return None
        flags = reply.flag(b"f")
        return (int(flags) if flags and flags.isdigit() else 0), reply.value
    values = getattr(reply, "values", None)
    if not values:
        return None
    return values[0].flags, values[0].data


class WarmUpRoute(RouteHandle):
    name = "warm-up"

    def __init__(self, cold: RouteHandle, warm: RouteHandle, exptime: int = 0) -> None:
        self.cold = cold
        self.warm = warm
        self.exptime = exptime
        self.children = [cold, warm]

    def route(self, req, done) -> None:
        if type(req) is MetaRequest:
            handler = WarmUpRoute._get if req.command == b"mg" else None
        else:
            handler = self._HANDLERS.get(operation(req))
        if handler is None:
            self.cold.route(req, done)
        else:
            handler(self, req, done)

    def _cold_then_warm(self, req, done, warm_answered) -> None:
        """Ask cold; a hit there is the answer, otherwise warm's reply goes to
        ``warm_answered``."""
        def cold_answered(reply) -> None:
            if is_hit(reply):
                done(reply)
            else:
                self.warm.route(req, warm_answered)

        self.cold.route(req, cold_answered)

    def _get(self, req, done) -> None:
        def warm_answered(reply) -> None:
            done(reply)
            value = _value_of(reply)
            if value is not None:
                add = add_request(key_of(req), value[0], value[1], self.exptime)
                in_background(self.cold, add)

        self._cold_then_warm(req, done, warm_answered)

    def _refetch(self, req, done) -> None:
        """gets, gat, gats: warm cold synchronously, then ask cold again."""
        key = key_of(req)

        def cold_answered(cold_reply) -> None:
            if is_hit(cold_reply):
                done(cold_reply)
                return

            def warm_answered(reply) -> None:
                value = _value_of(reply)
                if value is None:
                    done(cold_reply)
                    return
                exptime = self.exptime if req.command == b"gets" else req.exptime
                self.cold.route(add_request(key, value[0], value[1], exptime),
                                lambda _added: self.cold.route(req, done))

            self.warm.route(Request(b"get", [key]), warm_answered)

        self.cold.route(req, cold_answered)

    def _metaget(self, req, done) -> None:
        self._cold_then_warm(req, done, done)

    _HANDLERS = {"get": _get, "gets": _refetch, "gat": _refetch, "gats": _refetch,
                 "metaget": _metaget}


@register("WarmUpRoute")
def make_warm_up_route(factory, json) -> RouteHandle:
    factory.check(isinstance(json, dict), "WarmUpRoute should be object")
    factory.check("cold" in json, "WarmUpRoute: no cold route")
    factory.check("warm" in json, "WarmUpRoute: no warm route")
    factory.get(json, "enable_metaget", False, bool)
    exptime = factory.get(json, "exptime", 0, int, "an integer")
    warm = factory.create(json["warm"], "warm")  # mcrouter builds warm first
    return WarmUpRoute(factory.create(json["cold"], "cold"), warm, exptime)
