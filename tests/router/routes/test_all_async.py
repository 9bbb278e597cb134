"""AllAsyncRoute: everyone gets the request; the client gets the default reply at once."""

import pytest

from pymc.router.routes.all_async import AllAsyncRoute
from pymc.router.routes.null import NullRoute

from ..recording import (MetaReply, build as meta, delete, error, get, hit, route, set_)


def test_replies_at_once_without_waiting(kids, build):
    a = kids.add("a", hit(), deferred=True)
    b = kids.add("b", error("timeout"), deferred=True)
    handle = build({"type": "AllAsyncRoute", "children": ["Rec|a", "Rec|b"]})
    assert isinstance(handle, AllAsyncRoute) and handle.name == "all-async"
    req = get()
    assert route(handle, req).result == b"END"  # a miss, although a has a hit coming
    assert a.seen == [req] and b.seen == [req]
    a.release()
    b.release()  # late replies go nowhere (route() would fail on a second done)


@pytest.mark.parametrize("req, expected", [
    (get(), b"END"), (set_(), b"NOT_STORED"), (delete(), b"NOT_FOUND")])
def test_default_reply_by_operation(kids, build, req, expected):
    handle = build({"type": "AllAsyncRoute", "children": ["Rec|a", "Rec|b"]})
    assert route(handle, req).result == expected


def test_meta_default_reply(kids, build):
    handle = build({"type": "AllAsyncRoute", "children": ["Rec|a", "Rec|b"]})
    assert route(handle, meta(b"ms", b"k", data=b"v")).code == b"NS"
    assert route(handle, meta(b"mg", b"k", b"v")).code == b"EN"
    assert isinstance(route(handle, meta(b"md", b"k")), MetaReply)


def test_one_child_is_still_async(kids, build):
    # Collapsing to the child would make the client wait; mcrouter keeps the route.
    kids.add("a", deferred=True)
    handle = build("AllAsyncRoute|Rec|a")
    assert isinstance(handle, AllAsyncRoute)
    assert route(handle, set_()).result == b"NOT_STORED"
    assert handle.traverse(set_()) == [kids["a"]]


def test_no_children_is_a_null_route(build):
    assert isinstance(build({"type": "AllAsyncRoute", "children": []}), NullRoute)
    assert isinstance(build({"type": "AllAsyncRoute"}), NullRoute)
