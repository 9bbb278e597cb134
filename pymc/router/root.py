"""The top of the tree: pick route trees by the key's routing prefix (mcrouter's RootRoute and
RouteHandleMap).

- no prefix → the default route (``-R``);
- ``/*/*/`` → every route, ``/region/*/`` → every cluster of the region, other globs
  (``/*/mw-wan/``) by ``match_pattern_route``; the default route goes first when it matches;
- a prefix not in the config → ``/region/fallback/`` if configured;
- nothing found → the default route with ``--send-invalid-route-to-default``, else the error
  ``SERVER_ERROR RootRoute: No rh found``.
With several targets the first one's reply is returned and the others run in the background,
as mcrouter does for broadcasts.
"""

from __future__ import annotations

from .keys import RoutedKey
from .ops import key_of
from .results import ErrorReply
from .routes.base import RouteHandle, in_background

BROADCAST = "/*/*/"
FALLBACK_CLUSTER = "fallback"
NO_ROUTE = "RootRoute: No rh found"
_MEMO_LIMIT = 4096


def match_pattern_route(pattern: str, route: str) -> bool:
    """True if a glob prefix (``/foo/a*c/``) matches a route (``/foo/abc/``); ``*`` never
    crosses a ``/``."""
    return _match(pattern, 0, route, 0)


def _match(pattern: str, pi: int, route: str, ri: int) -> bool:
    pend, rend = len(pattern), len(route)
    while pi < pend:
        if ri == rend:
            return False
        if pattern[pi] == "*":
            while pi < pend and pattern[pi] == "*":
                pi += 1
            if pi == pend:
                return "/" not in route[ri:]
            if pattern[pi] == "/":
                ri = route.find("/", ri)
                if ri < 0:
                    return False
                continue
            while ri < rend and route[ri] != "/":
                if _match(pattern, pi, route, ri):
                    return True
                ri += 1
            return False
        if pattern[pi] != route[ri]:
            return False
        pi += 1
        ri += 1
    return ri == rend


def region_of(prefix: str) -> str:
    return prefix.split("/")[1] if prefix.count("/") >= 3 else ""


class RouteMap:
    """Routing prefix → the route trees a request goes to (default first)."""

    def __init__(self, routes: dict[str, RouteHandle], default_prefix: str,
                 send_invalid_to_default: bool) -> None:
        self.routes = routes
        self.default_prefix = default_prefix
        self.default = routes[default_prefix]
        self.send_invalid_to_default = send_invalid_to_default
        self._memo: dict[bytes, list[RouteHandle]] = {}

    def targets(self, prefix: bytes) -> list[RouteHandle]:
        found = self._memo.get(prefix)
        if found is None:
            found = self._lookup(prefix.decode("latin-1"))
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[prefix] = found
        return found

    def _lookup(self, prefix: str) -> list[RouteHandle]:
        if not prefix:
            return [self.default]
        if prefix == BROADCAST:
            found = self._matching(lambda alias: True)
        elif "*" not in prefix:
            route = self.routes.get(prefix)
            if route is None:
                route = self.routes.get(f"/{region_of(prefix)}/{FALLBACK_CLUSTER}/")
            found = [route] if route is not None else []
        elif prefix.endswith("/*/") and prefix.index("*") == len(prefix) - 2:
            region = prefix[1:-3]
            found = self._matching(lambda alias: region_of(alias) == region)
        else:
            found = self._matching(lambda alias: match_pattern_route(prefix, alias))
        if not found and self.send_invalid_to_default:
            return [self.default]
        return found

    def _matching(self, accept) -> list[RouteHandle]:
        found: list[RouteHandle] = []
        if accept(self.default_prefix):
            found.append(self.default)
        for alias, route in self.routes.items():
            if alias != self.default_prefix and accept(alias) and \
                    all(route is not seen for seen in found):
                found.append(route)
        return found


class RootRoute(RouteHandle):
    name = "root"

    def __init__(self, route_map: RouteMap) -> None:
        self.map = route_map
        self.default = route_map.default
        #: The destination every plain get key goes to, if it is one (a one-server pool).
        self.fixed_get = self.default.fixed("get")

    def route(self, req, done) -> None:
        key = key_of(req)
        if key[:1] != b"/":
            self.default.route(req, done)
            return
        targets = self.map.targets(RoutedKey(key).prefix)
        if len(targets) == 1:
            targets[0].route(req, done)
        elif not targets:
            done(ErrorReply("local_error", NO_ROUTE))
        else:
            for other in targets[1:]:
                in_background(other, req)
            targets[0].route(req, done)

    def resolve(self, op: str, key: bytes):
        if key[:1] != b"/":
            return self.default.resolve(op, key)
        targets = self.map.targets(RoutedKey(key).prefix)
        return targets[0].resolve(op, key) if len(targets) == 1 else None

    def traverse(self, req) -> list[RouteHandle]:
        key = key_of(req)
        return self.map.targets(RoutedKey(key).prefix if key[:1] == b"/" else b"")
