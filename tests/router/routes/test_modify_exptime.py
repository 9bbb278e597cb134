"""ModifyExptimeRoute: set or cap the exptime of requests that carry one."""

import pytest

from pymc.protocol.messages import Request
from pymc.router.jsonc import ConfigError
from pymc.router.routes.modify_exptime import ModifyExptimeRoute

from ..recording import build as meta, delete, get, route, set_

ABSOLUTE = 1_900_000_000  # a unix time: memcached reads values over 30 days as absolute


def modify(build, action=None, exptime=10):
    json = {"type": "ModifyExptimeRoute", "target": "Rec|t", "exptime": exptime}
    if action:
        json["action"] = action
    return build(json)


def sent(kids, handle, req):
    route(handle, req)
    return kids["t"].seen[-1]


@pytest.mark.parametrize("before, after", [(0, 10), (5, 10), (100, 10), (-1, 10)])
def test_set_replaces_the_exptime(kids, build, before, after):
    handle = modify(build)
    assert handle.name == "modify-exptime|set|exptime=10"
    req = set_(exptime=before)
    assert sent(kids, handle, req).exptime == after
    assert req.exptime == before  # the client's request is not changed


@pytest.mark.parametrize("before, after", [
    (0, 10), (100, 10), (ABSOLUTE, 10), (10, 10), (5, 5), (1, 1), (-1, -1)])
def test_min_caps_the_exptime(kids, build, before, after):
    handle = modify(build, "min")
    assert handle.name == "modify-exptime|min|exptime=10"
    assert sent(kids, handle, set_(exptime=before)).exptime == after


def test_unchanged_requests_are_passed_as_they_are(kids, build):
    req = set_(exptime=5)
    assert sent(kids, modify(build, "min"), req) is req


@pytest.mark.parametrize("command", [b"add", b"replace", b"append", b"prepend", b"cas",
                                     b"touch", b"gat", b"gats"])
def test_every_operation_with_an_exptime(kids, build, command):
    req = Request(command, [b"k"], exptime=0, data=b"v")
    assert sent(kids, modify(build, "set"), req).exptime == 10


@pytest.mark.parametrize("req", [get(), delete(), Request(b"incr", [b"k"], delta=1),
                                 meta(b"md", b"k", b"T30"), meta(b"mg", b"k", b"v"),
                                 meta(b"ma", b"k", b"N0", b"T30")])
def test_operations_without_an_exptime_are_untouched(kids, build, req):
    assert sent(kids, modify(build, "set"), req) is req


def test_meta_requests(kids, build):
    handle = modify(build, "min")
    forever = sent(kids, handle, meta(b"ms", b"k", data=b"v"))  # no T: never expires
    assert forever.exptime == 10 and b"T10" in forever.tokens
    long = sent(kids, handle, meta(b"ms", b"k", b"T300", data=b"v"))
    assert long.tokens.count(b"T10") == 1 and b"T300" not in long.tokens
    touch = sent(kids, handle, meta(b"mg", b"k", b"v", b"T0"))
    assert touch.exptime == 10


def test_min_with_zero_is_the_target(kids, build):
    assert modify(build, "min", 0) is kids["t"]
    assert isinstance(modify(build, "set", 0), ModifyExptimeRoute)


def test_min_with_a_negative_exptime_still_wraps(kids, build):
    # mcrouter's makeModifyExptimeRoute returns the target only for "min" with 0
    handle = modify(build, "min", -1)
    assert isinstance(handle, ModifyExptimeRoute)
    assert handle.name == "modify-exptime|min|exptime=-1"
    assert sent(kids, handle, set_(exptime=100)).exptime == -1
    assert sent(kids, handle, set_(exptime=0)).exptime == -1
    assert sent(kids, handle, set_(exptime=-5)).exptime == -5


def test_traverse(kids, build):
    assert modify(build).traverse(get()) == [kids["t"]]


@pytest.mark.parametrize("json, message", [
    ("ModifyExptimeRoute|Rec|t", "should be an object"),
    ({"type": "ModifyExptimeRoute", "exptime": 1}, "'target' property is missing"),
    ({"type": "ModifyExptimeRoute", "target": "Rec|t"}, "'exptime' property is missing"),
    ({"type": "ModifyExptimeRoute", "target": "Rec|t", "exptime": "1"}, "not an integer"),
    ({"type": "ModifyExptimeRoute", "target": "Rec|t", "exptime": 1, "action": "max"},
     "action should be 'set' or 'min'"),
])
def test_bad_config(kids, build, json, message):
    with pytest.raises(ConfigError, match=message):
        build(json)
