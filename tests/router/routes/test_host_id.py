"""HostIdRoute: the child picked by the host id, fixed when the config is built."""

from pymc.router.factory import RouteFactory
from pymc.router.options import RouterOptions, default_host_id
from pymc.router.routes.host_id import pick_for_host
from pymc.router.routes.null import NullRoute

from ..recording import get, route

CHILDREN = ["Rec|a", "Rec|b", "Rec|c"]


def host(host_id, json):
    return RouteFactory(options=RouterOptions(host_id=host_id)).create(json)


def test_child_is_host_id_mod_n(kids):
    for host_id, name in [(0, "a"), (1, "b"), (2, "c"), (3, "a"), (1000, "b")]:
        assert host(host_id, {"type": "HostIdRoute", "children": CHILDREN}) is kids[name]


def test_the_child_itself_is_the_route(kids):
    handle = host(5, {"type": "HostIdRoute", "children": CHILDREN})
    route(handle, get())
    assert len(kids["c"].seen) == 1


def test_without_options_the_default_host_id_is_used(kids, build):
    expected = "abc"[default_host_id() % 3]
    assert build({"type": "HostIdRoute", "children": CHILDREN}) is kids[expected]


def test_salt_changes_the_pick_deterministically(kids):
    json = {"type": "HostIdRoute", "children": CHILDREN, "salt": "x"}
    picks = {host(h, json).name for h in range(30)}
    assert len(picks) == 3  # still spreads over all children
    assert host(7, json) is pick_for_host([kids["a"], kids["b"], kids["c"]], 7, "x")
    unsalted = [host(h, {"type": "HostIdRoute", "children": CHILDREN}).name for h in range(30)]
    assert [host(h, json).name for h in range(30)] != unsalted


def test_collapses(kids, build):
    assert isinstance(build({"type": "HostIdRoute", "children": []}), NullRoute)
    assert build("HostIdRoute|Rec|x") is kids["x"]
