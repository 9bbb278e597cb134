"""AllFastestRoute: the first reply that is not a failover error, else the last error."""

from pymc.router.routes.all_fastest import AllFastestRoute
from pymc.router.routes.null import NullRoute

from ..recording import MISS, STORED, error, get, hit, route


def fastest(build, n=3):
    return build({"type": "AllFastestRoute", "children": [f"Rec|k{i}" for i in range(n)]})


def test_first_good_reply_wins(kids, build):
    slow = kids.add("k0", hit(), deferred=True)
    quick = kids.add("k1", MISS, deferred=True)
    kids.add("k2", error("timeout"), deferred=True)
    handle = fastest(build)
    assert isinstance(handle, AllFastestRoute) and handle.name == "all-fastest"
    replies = []
    handle.route(get(), replies.append)
    kids["k2"].release()  # an error: keep waiting
    assert replies == []
    quick.release()  # a miss is a good reply
    assert replies == [MISS]
    slow.release()
    assert replies == [MISS]


def test_all_errors_give_the_last_to_arrive(kids, build):
    for name, kind in (("k0", "timeout"), ("k1", "tko"), ("k2", "busy")):
        kids.add(name, error(kind), deferred=True)
    handle = fastest(build)
    replies = []
    handle.route(get(), replies.append)
    for name in ("k2", "k0", "k1"):
        kids[name].release()
    assert [r.kind for r in replies] == ["tko"]


def test_only_failover_errors_are_skipped(kids, build):
    # client_error is an error, but not one mcrouter fails over on: it is an answer.
    kids.add("k0", error("client_error"))
    kids.add("k1", STORED)
    assert route(fastest(build, 2), get()).kind == "client_error"


def test_collapses(kids, build):
    assert build({"type": "AllFastestRoute", "children": ["Rec|a"]}) is kids["a"]
    assert isinstance(build({"type": "AllFastestRoute", "children": []}), NullRoute)
    assert fastest(build, 2).traverse(get()) == [kids["k0"], kids["k1"]]
