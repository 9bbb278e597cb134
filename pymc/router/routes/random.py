"""RandomRoute: sends each request to a child picked uniformly at random (mcrouter's
lib/routes/RandomRoute.h). No children → NullRoute; one child → that child."""

from __future__ import annotations

import random as _random

from .base import RouteHandle, child_list, collapse, register


class RandomRoute(RouteHandle):
    name = "random"

    def __init__(self, children: list[RouteHandle], rng: _random.Random | None = None) -> None:
        self.children = children
        # A private generator (mcrouter seeds one per route from the clock), so tests can
        # pass a seeded one and nothing else shares its state.
        self._randrange = (rng or _random.Random()).randrange

    def route(self, req, done) -> None:
        self.children[self._randrange(len(self.children))].route(req, done)


@register("RandomRoute")
def make_random_route(factory, json) -> RouteHandle:
    return collapse(child_list(factory, json), RandomRoute)
