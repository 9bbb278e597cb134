"""LatestRoute: failover_count children picked per host, then in-order failover."""

import pytest

from pymc.router.factory import RouteFactory
from pymc.router.jsonc import ConfigError
from pymc.router.options import RouterOptions
from pymc.router.routes.failover import FailoverRoute
from pymc.router.routes.latest import pick_targets
from pymc.router.routes.null import NullRoute

from ..recording import Recorder, error, get, hit, route, set_

CHILDREN = [f"Rec|c{i}" for i in range(10)]


def latest(host_id=1, **options):
    factory = RouteFactory(options=RouterOptions(host_id=host_id))
    return factory.create({"type": "LatestRoute", "children": CHILDREN, **options})


def test_picks_failover_count_distinct_children(kids):
    handle = latest()
    assert isinstance(handle, FailoverRoute) and handle.name == "failover"
    assert len(handle.children) == 5 and len(set(map(id, handle.children))) == 5
    assert len(latest(failover_count=3).children) == 3
    assert len(latest(failover_count=50).children) == 10


def test_same_host_same_pick_other_hosts_spread(kids):
    assert latest(42).children == latest(42).children
    firsts = {latest(h).children[0].name for h in range(60)}
    assert len(firsts) >= 6


def test_salt_changes_the_pick(kids):
    plain = [latest(h).children for h in range(20)]
    salted = [latest(h, salt="s").children for h in range(20)]
    assert plain != salted


def test_zero_weight_children_are_not_picked_first(kids):
    weights = [0.0] * 5 + [1.0] * 5
    for h in range(20):
        first = latest(h, weights=weights, failover_count=2).children[0]
        assert first.name in {"c5", "c6", "c7", "c8", "c9"}


def test_pick_targets_takes_each_child_once():
    children = list(range(7))
    for host_id in range(50):
        picked = pick_targets(children, 7, host_id, [1.0] * 7)
        assert sorted(picked) == children
    assert pick_targets(children, -1, 3, [1.0] * 7) == pick_targets(children, 7, 3, [1.0] * 7)
    assert pick_targets([5], 3, 1, [1.0]) == [5]


def test_fails_over_in_picked_order(kids):
    handle = latest(7)
    first, second, third = handle.children[:3]
    first.reply = error("timeout")
    second.reply = hit()
    reply = route(handle, get())
    assert reply.values[0].data == b"v"
    assert len(first.seen) == len(second.seen) == 1 and not third.seen


def test_failover_errors_option(kids):
    handle = latest(7, failover_errors=["tko"])
    handle.children[0].reply = error("timeout")
    assert route(handle, set_()).kind == "timeout"
    assert not handle.children[1].seen


def test_deferred_replies_and_last_reply_wins(kids):
    handle = latest(3, failover_count=2)
    a, b = handle.children
    a.reply, a.deferred = error("tko"), True
    b.reply, b.deferred = error("connect_error"), True
    replies = []
    handle.route(get(), replies.append)
    a.release()
    assert replies == [] and len(b.seen) == 1
    b.release()
    assert len(replies) == 1 and replies[0].kind == "connect_error"


def test_collapses(kids, build):
    assert isinstance(build({"type": "LatestRoute", "children": []}), NullRoute)
    assert isinstance(latest(failover_count=0), NullRoute)
    assert build("LatestRoute|Rec|x") is kids["x"]
    assert latest(failover_count=1).name.startswith("c")  # a single Recorder


@pytest.mark.parametrize("options, message", [
    ({"failover_count": "5"}, "'failover_count' is not an integer"),
    ({"failover_count": True}, "'failover_count' is not an integer"),
    ({"salt": 1}, "'salt' is not a string"),
    ({"weights": [2]}, r"weight must be in range"),
    ({"failover_errors": ["nonsense"]}, "is not a valid error type"),
])
def test_bad_config(kids, options, message):
    with pytest.raises(ConfigError, match=message):
        latest(**options)


def test_named_latest_route_is_named_like_mcrouter(kids):
    assert latest(name="lat").name == "failover:lat:failover_targets=5"


def test_recorders_are_children():
    # pick_targets never mutates the caller's list
    children = [Recorder(str(i)) for i in range(4)]
    copy = list(children)
    pick_targets(children, 2, 9, [1.0] * 4)
    assert children == copy
