"""RandomRoute: a random child per request."""

import random

from pymc.router.routes.null import NullRoute
from pymc.router.routes.random import RandomRoute

from ..recording import Recorder, error, get, hit, route


def test_name_and_every_child_is_used(kids, build):
    handle = build({"type": "RandomRoute", "children": ["Rec|a", "Rec|b", "Rec|c"]})
    assert isinstance(handle, RandomRoute) and handle.name == "random"
    for i in range(300):
        route(handle, get(b"k%d" % i))
    counts = [len(kids[name].seen) for name in "abc"]
    assert sum(counts) == 300 and min(counts) > 50


def test_traverse_lists_all_children(kids, build):
    handle = build({"type": "RandomRoute", "children": ["Rec|a", "Rec|b"]})
    assert handle.traverse(get()) == [kids["a"], kids["b"]]


def test_seeded_generator_is_reproducible():
    children = [Recorder(str(i)) for i in range(4)]
    first = RandomRoute(children, random.Random(7))
    for _ in range(20):
        route(first, get())
    picks = [len(c.seen) for c in children]
    children2 = [Recorder(str(i)) for i in range(4)]
    second = RandomRoute(children2, random.Random(7))
    for _ in range(20):
        route(second, get())
    assert [len(c.seen) for c in children2] == picks


def test_collapses(kids, build):
    assert isinstance(build({"type": "RandomRoute", "children": []}), NullRoute)
    assert isinstance(build({"type": "RandomRoute"}), NullRoute)
    assert build("RandomRoute|Rec|x") is kids["x"]


def test_replies_pass_through_once(kids, build):
    kids.add("a", hit(), deferred=True)
    kids.add("b", error("timeout"), deferred=True)
    handle = build({"type": "RandomRoute", "children": ["Rec|a", "Rec|b"]})
    replies = []
    handle.route(get(), replies.append)
    assert replies == []
    kids["a"].release()
    kids["b"].release()
    assert len(replies) == 1
