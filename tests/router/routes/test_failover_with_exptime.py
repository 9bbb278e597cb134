"""FailoverWithExptimeRoute: failover children get a short exptime."""

import pytest

from pymc.router.jsonc import ConfigError
from pymc.router.routes.failover import FailoverRoute
from pymc.router.routes.modify_exptime import ModifyExptimeRoute

from ..recording import STORED, build as meta, error, get, route, set_

WIKIMEDIA = {"type": "FailoverWithExptimeRoute", "normal": "Rec|normal",
             "failover": "Rec|gutter", "failover_exptime": 600, "failover_errors": ["tko"]}


def test_builds_failover_over_normal_then_wrapped_failovers(kids, build):
    handle = build({"type": "FailoverWithExptimeRoute", "normal": "Rec|n",
                    "failover": ["Rec|f1", "Rec|f2"]})
    assert isinstance(handle, FailoverRoute)
    normal, first, second = handle.children
    assert normal is kids["n"]
    assert isinstance(first, ModifyExptimeRoute) and first.children == [kids["f1"]]
    assert second.children == [kids["f2"]]
    assert first.name == "modify-exptime|min|exptime=60"  # the default failover_exptime


def test_failover_writes_get_the_short_exptime(kids, build):
    kids.add("normal", error("tko"))
    kids.add("gutter", STORED)
    handle = build(WIKIMEDIA)
    req = set_(exptime=0)
    assert route(handle, req) is STORED
    assert kids["normal"].seen == [req]
    assert kids["gutter"].seen[0].exptime == 600
    assert req.exptime == 0
    req = meta(b"ms", b"k", data=b"v")
    route(handle, req)
    assert kids["gutter"].seen[1].exptime == 600 and b"T600" in kids["gutter"].seen[1].tokens


def test_shorter_exptimes_are_kept(kids, build):
    kids.add("normal", error("tko"))
    route(build(WIKIMEDIA), set_(exptime=30))
    assert kids["gutter"].seen[0].exptime == 30


def test_failover_errors_apply(kids, build):
    kids.add("normal", error("timeout"))
    assert route(build(WIKIMEDIA), get()).kind == "timeout"
    assert kids["gutter"].seen == []


def test_zero_failover_exptime_leaves_failovers_unwrapped(kids, build):
    handle = build({"type": "FailoverWithExptimeRoute", "normal": "Rec|n",
                    "failover": "Rec|f", "failover_exptime": 0})
    assert handle.children == [kids["n"], kids["f"]]


@pytest.mark.parametrize("exptime", [-1, -600])
def test_negative_failover_exptime_leaves_failovers_unwrapped(kids, build, exptime):
    # mcrouter's getFailoverChildren wraps only for failover_exptime > 0
    kids.add("n", error("tko"))
    handle = build({"type": "FailoverWithExptimeRoute", "normal": "Rec|n",
                    "failover": ["Rec|f1", "Rec|f2"], "failover_exptime": exptime})
    assert handle.children == [kids["n"], kids["f1"], kids["f2"]]
    route(handle, set_(exptime=300))
    assert kids["f1"].seen[0].exptime == 300  # the client's exptime reaches the gutter


@pytest.mark.parametrize("exptime", [1, 600])
def test_positive_failover_exptime_wraps_each_failover(kids, build, exptime):
    handle = build({"type": "FailoverWithExptimeRoute", "normal": "Rec|n",
                    "failover": ["Rec|f1", "Rec|f2"], "failover_exptime": exptime})
    assert handle.children[0] is kids["n"]
    for wrapped, kid in zip(handle.children[1:], (kids["f1"], kids["f2"])):
        assert isinstance(wrapped, ModifyExptimeRoute) and wrapped.children == [kid]
        assert wrapped.name == f"modify-exptime|min|exptime={exptime}"


@pytest.mark.parametrize("extra", [{}, {"failover": []}, {"failover": ""}])
def test_without_failover_it_is_the_normal_route(kids, build, extra):
    json = {"type": "FailoverWithExptimeRoute", "normal": "Rec|n", **extra}
    assert build(json) is kids["n"]


@pytest.mark.parametrize("json, message", [
    ("FailoverWithExptimeRoute|Rec|n", "is not an object"),
    ({"type": "FailoverWithExptimeRoute", "failover": "Rec|f"}, "'normal' property is missing"),
    ({"type": "FailoverWithExptimeRoute", "normal": "Rec|n", "failover": "Rec|f",
      "failover_exptime": "60"}, "'failover_exptime' is not an integer"),
    ({"type": "FailoverWithExptimeRoute", "normal": "Rec|n", "failover": "Rec|f",
      "failover_errors": ["oops"]}, "failover_errors: Failover error 'oops'"),
])
def test_bad_config(kids, build, json, message):
    with pytest.raises(ConfigError, match=message):
        build(json)
