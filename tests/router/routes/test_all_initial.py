"""AllInitialRoute: everyone gets the request; the first child's reply is the answer."""

from pymc.router.routes.all_initial import AllInitialRoute
from pymc.router.routes.null import NullRoute

from ..recording import STORED, error, route, set_


def test_answers_with_the_first_childs_reply(kids, build):
    kids.add("a", error("timeout"))
    kids.add("b", STORED)
    handle = build({"type": "AllInitialRoute", "children": ["Rec|a", "Rec|b"]})
    assert isinstance(handle, AllInitialRoute) and handle.name == "all-initial"
    req = set_()
    assert route(handle, req).kind == "timeout"
    assert kids["a"].seen == [req] and kids["b"].seen == [req]


def test_does_not_wait_for_the_others(kids, build):
    kids.add("a", STORED)
    late = kids.add("b", error("busy"), deferred=True)
    handle = build({"type": "AllInitialRoute", "children": ["Rec|a", "Rec|b"]})
    replies = []
    handle.route(set_(), replies.append)
    assert replies == [STORED]
    late.release()
    assert replies == [STORED]


def test_waits_for_the_first_child_only(kids, build):
    first = kids.add("a", STORED, deferred=True)
    kids.add("b", error("busy"))
    handle = build({"type": "AllInitialRoute", "children": ["Rec|a", "Rec|b"]})
    replies = []
    handle.route(set_(), replies.append)
    assert replies == []
    first.release()
    assert replies == [STORED]


def test_collapses(kids, build):
    assert build({"type": "AllInitialRoute", "children": ["Rec|a"]}) is kids["a"]
    assert isinstance(build({"type": "AllInitialRoute", "children": []}), NullRoute)


def test_traverse_lists_all_children(kids, build):
    handle = build({"type": "AllInitialRoute", "children": ["Rec|a", "Rec|b"]})
    assert handle.traverse(set_()) == [kids["a"], kids["b"]]
