"""The shape every route handle has, and the registry from JSON ``"type"`` to builder.

A route handle answers ``route(req, done)``: it calls ``done(reply)`` exactly once, now or
later (continuation style: no greenlet per request, so the proxy stays fast). Failures are
replies (``results.ErrorReply``), never exceptions. ``traverse(req)`` lists the children that
may see ``req`` (it powers ``__mcrouter__.route_handles``); ``name`` is mcrouter's routeName().

Builders have the signature ``make(factory, json) -> RouteHandle`` and are registered with
``@register("TypeName", "Alias")``. They simplify as mcrouter does (no children → NullRoute,
one child → that child) through ``collapse``.
"""

from __future__ import annotations

from typing import Callable

Done = Callable[[object], None]
Builder = Callable[..., "RouteHandle"]

#: Stands for the child list a route hands its hashing child (see RouteFactory.children_list).
CHILDREN_LIST = "$children_list$"

#: JSON "type" → builder(factory, json).
REGISTRY: dict[str, Builder] = {}


def register(*type_names: str) -> Callable[[Builder], Builder]:
    def decorate(builder: Builder) -> Builder:
        for type_name in type_names:
            if type_name in REGISTRY:
                raise ValueError(f"route type {type_name} registered twice")
            REGISTRY[type_name] = builder
        return builder
    return decorate


class RouteHandle:
    """Base class: a leaf with no children. Subclasses set ``name`` and override ``route``."""

    name = "route"
    #: Every handle directly below this one (``traverse`` narrows it to those a request
    #: reaches); keyless commands and admin walks rely on it being complete.
    children: list["RouteHandle"] = []

    def route(self, req, done: Done) -> None:
        raise NotImplementedError

    def traverse(self, req) -> list["RouteHandle"]:
        return list(self.children)

    def resolve(self, op: str, key: bytes):
        """The DestinationRoute a plain get (``op`` "get"/"gets") of ``key`` goes to when every
        server answers normally, or None when that is not fixed in advance (fan-out, misses
        that fail over, randomness). The proxy batches multi-gets by it; any error reply
        sends the keys through ``route`` after all, so failover still happens."""
        return None

    def fixed(self, op: str):
        """The DestinationRoute every key of ``op`` resolves to, if it is the same for all
        keys (a one-server pool), else None: lets a multi-get skip resolving key by key."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def child_list(factory, json) -> list[RouteHandle]:
    """The children of ``{"children": ...}`` or ``"Type|children"``, read as mcrouter's
    factories for routes over a child list do: an object without ``children`` (or ``"Type|"``)
    has none, which ``collapse`` turns into a NullRoute."""
    if (isinstance(json, dict) and "children" not in json) or json == "":
        return []
    return factory.children(json)


def collapse(children: list[RouteHandle], make_many: Callable[[list[RouteHandle]],
                                                              RouteHandle]) -> RouteHandle:
    """mcrouter's simplification for routes over a child list: none → NullRoute, one → the
    child itself, more → ``make_many(children)``."""
    if not children:
        from .null import NullRoute
        return NullRoute()
    if len(children) == 1:
        return children[0]
    return make_many(children)


class Gather:
    """Collects one reply per child and calls ``finish(replies)`` once all have answered,
    with replies in child order (whatever order they arrived in)."""

    __slots__ = ("replies", "waiting", "finish")

    def __init__(self, count: int, finish: Callable[[list], None]) -> None:
        self.replies: list = [None] * count
        self.waiting = count
        self.finish = finish

    def slot(self, index: int) -> Done:
        def done(reply) -> None:
            self.replies[index] = reply
            self.waiting -= 1
            if self.waiting == 0:
                self.finish(self.replies)
        return done


def answer_early(children: list[RouteHandle], req, done: Done,
                 settle: Callable[[object, bool], object]) -> None:
    """Sends ``req`` to every child. ``settle(reply, last)`` sees each reply as it arrives
    (``last`` for the final one) and returns the reply to answer with, or None to wait for
    more; ``done`` is called once and replies arriving after it are dropped."""
    waiting = len(children)
    answered = False

    def arrived(reply) -> None:
        nonlocal waiting, answered
        waiting -= 1
        if answered:
            return
        answer = settle(reply, waiting == 0)
        if answer is not None:
            answered = True
            done(answer)

    for child in children:
        child.route(req, arrived)


class SelectorRoute(RouteHandle):
    """Hands each request to the one child ``select`` picks from ``policies`` (else
    ``fallback``); with none picked it answers ``unrouted()`` without sending anything.
    Subclasses say how a request picks (by operation, by key prefix)."""

    def __init__(self, policies: dict, fallback: RouteHandle | None = None) -> None:
        self.policies = policies
        self.fallback = fallback
        candidates = [*policies.values(), *([fallback] if fallback is not None else [])]
        # One handle may serve several policies; walks over children should meet it once.
        self.children = list({id(child): child for child in candidates}.values())

    def select(self, req) -> RouteHandle | None:
        raise NotImplementedError

    def unrouted(self):
        raise NotImplementedError

    def route(self, req, done: Done) -> None:
        child = self.select(req)
        if child is None:
            done(self.unrouted())
        else:
            child.route(req, done)

    def traverse(self, req) -> list[RouteHandle]:
        child = self.select(req)
        return [child] if child is not None else []


def ignore(reply) -> None:
    """``done`` for requests whose reply nobody waits for (async fan-out, shadows)."""


class BackgroundWork:
    """Requests routed for their side effects only (AllAsyncRoute, the non-default targets of
    a broadcast, shadows, warm-up fills). Their number in flight is bounded so a hanging
    backend cannot make them pile up: past ``limit`` a request is dropped and counted."""

    __slots__ = ("limit", "inflight", "dropped")

    def __init__(self, limit: int = 10000) -> None:
        self.limit = limit
        self.inflight = 0
        self.dropped = 0

    def route(self, handle: "RouteHandle", req) -> None:
        if self.inflight >= self.limit:
            self.dropped += 1
            return
        self.inflight += 1
        handle.route(req, self._finished)

    def _finished(self, reply) -> None:
        self.inflight -= 1


#: The router's one bound for background requests (the server sets ``limit`` from options).
BACKGROUND = BackgroundWork()


def in_background(handle: "RouteHandle", req) -> None:
    BACKGROUND.route(handle, req)
