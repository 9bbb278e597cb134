"""PrefixSelectorRoute: the child for the longest matching key prefix, else the wildcard."""

import pytest

from pymc.router.jsonc import ConfigError
from pymc.router.routes.prefix_selector import PrefixSelectorRoute

from ..recording import build as meta, get, route, set_

POLICIES = {"a": "Rec|a", "ab": "Rec|ab", "abc:": "Rec|abc", "x": "Rec|x"}


def selector(build, **json):
    return build({"type": "PrefixSelectorRoute", **json})


@pytest.mark.parametrize("key, child", [
    (b"a1", "a"), (b"ab", "ab"), (b"abc", "ab"), (b"abc:1", "abc"), (b"x", "x"),
    (b"/r/c/abc:9", "abc"), (b"/r/c/ab|#|c:", "ab"), (b"b", "w"), (b"", "w")])
def test_longest_prefix_of_the_routing_key(kids, build, key, child):
    handle = selector(build, policies=POLICIES, wildcard="Rec|w")
    assert isinstance(handle, PrefixSelectorRoute) and handle.name == "prefix-selector"
    route(handle, get(key))
    assert [name for name in ("a", "ab", "abc", "x", "w") if kids[name].seen] == [child]
    assert handle.traverse(get(key)) == [kids[child]]


def test_no_match_without_wildcard_is_mcrouters_error(kids, build):
    handle = selector(build, policies={"a": "Rec|a"})
    reply = route(handle, set_(b"zzz"))
    assert reply.kind == "local_error"
    assert reply.line() == b"SERVER_ERROR RootRoute: No rh found\r\n"
    assert handle.traverse(get(b"zzz")) == []


def test_children_are_listed_once(kids, build):
    handle = selector(build, policies={"a": "Rec|x", "b": "Rec|x"}, wildcard="Rec|x")
    assert handle.children == [kids["x"]]


def test_wildcard_only(kids, build):
    handle = selector(build, wildcard="Rec|w")
    route(handle, get(b"anything"))
    assert len(kids["w"].seen) == 1


def test_meta_requests(kids, build):
    handle = selector(build, policies=POLICIES, wildcard="Rec|w")
    route(handle, meta(b"mg", b"abc:1", b"v"))
    assert len(kids["abc"].seen) == 1


def test_deferred_reply_passes_through_once(kids, build):
    child = kids.add("a", deferred=True)
    handle = selector(build, policies={"a": "Rec|a"})
    replies = []
    handle.route(get(b"a"), replies.append)
    assert replies == []
    child.release()
    assert len(replies) == 1


def test_allowed_below_the_top(kids, build):
    handle = build({"type": "AllSyncRoute", "children": [
        {"type": "PrefixSelectorRoute", "policies": {"p": "Rec|p"}, "wildcard": "Rec|w"},
        "Rec|other"]})
    route(handle, get(b"p1"))
    assert len(kids["p"].seen) == 1 and len(kids["other"].seen) == 1


@pytest.mark.parametrize("json, message", [
    ({}, "no policies/wildcard"),
    ({"policies": []}, "policies is not an object"),
    ({"policies": {"a": None}}, "policies.a"),
])
def test_bad_config(kids, build, json, message):
    with pytest.raises(ConfigError, match=message):
        selector(build, **json)
