"""RootRoute and RouteMap: default route, exact prefixes, fallback, broadcasts and globs,
as mcrouter's RouteHandleMap; match_pattern_route with mcrouter's own test cases."""

import pytest

from pymc.router.root import RootRoute, RouteMap, match_pattern_route
from tests.router.recording import Recorder, delete, get, route, set_

MATCHES = [("/a/b/", "/a/b/"), ("/a/*/", "/a/b/"), ("/a/a*c/", "/a/abc/"),
           ("/a/a*c/", "/a/abbbbbbbbbbbbbbbc/"), ("/a*c/d*f/", "/abbbbc/deeeeeeeeeeeef/"),
           ("/a****/d*f/", "/abbbbc/deeeeeeeeeeeef/"), ("/*/*/", "/aaa/bbb/"),
           ("/*baf*/", "/aaabafggg/"), ("/*1*2*3*4*5/", "/aaa1bbb2bbb3af4sdgfsdg5/"),
           ("*", "a"), ("/*a/a/", "/a/a/"), ("/a/*a/", "/a/a/")]
NO_MATCHES = [("*", ""), ("*", "/"), ("*/*/", "a/b"), ("*", "a/b"), ("****", "/b")]


@pytest.mark.parametrize("pattern,route_name", MATCHES)
def test_match_pattern_route(pattern, route_name):
    assert match_pattern_route(pattern, route_name)


@pytest.mark.parametrize("pattern,route_name", NO_MATCHES)
def test_no_match_pattern_route(pattern, route_name):
    assert not match_pattern_route(pattern, route_name)


def make(send_invalid=False, extra=()):
    children = {alias: Recorder(alias) for alias in
                ("/eqiad/mw/", "/eqiad/mw-wan/", "/codfw/mw/", "/codfw/mw-wan/", *extra)}
    root = RootRoute(RouteMap(children, "/eqiad/mw/", send_invalid))
    return root, children


def hits(children):
    return {alias: len(child.seen) for alias, child in children.items() if child.seen}


def test_no_prefix_goes_to_default_route():
    root, children = make()
    route(root, get(b"plain"))
    assert hits(children) == {"/eqiad/mw/": 1}


def test_exact_prefix():
    root, children = make()
    route(root, get(b"/codfw/mw-wan/k"))
    assert hits(children) == {"/codfw/mw-wan/": 1}


def test_glob_fans_out_default_first_and_returns_its_reply():
    root, children = make()
    children["/eqiad/mw-wan/"].reply = lambda req: __import__(
        "tests.router.recording", fromlist=["DELETED"]).DELETED
    reply = route(root, delete(b"/*/mw-wan/k"))
    assert hits(children) == {"/eqiad/mw-wan/": 1, "/codfw/mw-wan/": 1}
    assert reply.result == b"DELETED"


def test_broadcast_all_and_region():
    root, children = make()
    route(root, set_(b"/*/*/k"))
    assert hits(children) == dict.fromkeys(children, 1)
    root, children = make()
    route(root, set_(b"/codfw/*/k"))
    assert hits(children) == {"/codfw/mw/": 1, "/codfw/mw-wan/": 1}


def test_default_route_first_among_broadcast_targets():
    root, children = make()
    assert root.traverse(get(b"/*/*/k"))[0] is children["/eqiad/mw/"]


def test_unknown_prefix_uses_region_fallback_then_error_or_default():
    root, children = make(extra=("/codfw/fallback/",))
    route(root, get(b"/codfw/nope/k"))
    assert hits(children) == {"/codfw/fallback/": 1}
    root, children = make()
    reply = route(root, get(b"/ulsfo/mw/k"))
    assert reply.line() == b"SERVER_ERROR RootRoute: No rh found\r\n" and not hits(children)
    root, children = make(send_invalid=True)
    route(root, get(b"/ulsfo/mw/k"))
    assert hits(children) == {"/eqiad/mw/": 1}


def test_glob_matching_nothing():
    root, children = make()
    assert route(root, get(b"/x*/y/k")).kind == "local_error"
    root, children = make(send_invalid=True)
    route(root, get(b"/x*/y/k"))
    assert hits(children) == {"/eqiad/mw/": 1}


def test_same_tree_under_two_aliases_is_routed_once():
    shared = Recorder("shared")
    root = RootRoute(RouteMap({"/a/a/": shared, "/a/b/": shared}, "/a/a/", False))
    route(root, delete(b"/*/*/k"))
    assert len(shared.seen) == 1
