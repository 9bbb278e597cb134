"""MissFailoverRoute: gets and deletes try children in order until a hit."""

import pytest

from pymc.protocol.messages import Reply
from pymc.router.jsonc import ConfigError
from pymc.router.routes.miss_failover import MissFailoverRoute
from pymc.router.routes.null import NullRoute

from ..recording import (DELETED, MISS, NOT_FOUND, MetaReply, build as meta, delete, error,
                         get, hit, route, set_)


def miss_failover(build, n=3, **options):
    return build({"type": "MissFailoverRoute", "children": [f"Rec|k{i}" for i in range(n)],
                  **options})


def test_first_hit_wins(kids, build):
    found = hit()
    kids.add("k0", MISS)
    kids.add("k1", found)
    handle = miss_failover(build)
    assert isinstance(handle, MissFailoverRoute) and handle.name == "miss-failover"
    assert route(handle, get()) is found
    assert kids.asked() == [1, 1, 0]


def test_a_hit_on_the_first_child_stops(kids, build):
    found = kids.add("k0", hit()).reply
    assert route(miss_failover(build), get()) is found
    assert kids.asked() == [1, 0, 0]


def test_all_missing_gives_the_last_reply(kids, build):
    last = Reply(b"END")
    kids.add("k2", last)
    assert route(miss_failover(build), get()) is last
    assert kids.asked() == [1, 1, 1]


def test_errors_fail_over_and_the_last_reply_wins(kids, build):
    kids.add("k0", MISS)
    kids.add("k1", MISS)
    kids.add("k2", error("timeout"))
    assert route(miss_failover(build), get()).kind == "timeout"


def test_return_best_on_error_prefers_a_miss_to_an_error(kids, build):
    kids.add("k0", error("remote_error"))
    kids.add("k1", MISS)
    kids.add("k2", error("timeout"))
    assert route(miss_failover(build, return_best_on_error=True), get()) is MISS


def test_return_best_on_error_takes_the_later_of_equals(kids, build):
    later = Reply(b"END")
    kids.add("k0", error("timeout"))
    kids.add("k1", MISS)
    kids.add("k2", later)
    assert route(miss_failover(build, return_best_on_error=True), get()) is later
    kids["k0"].reply = error("tko")
    kids["k1"].reply = error("timeout")
    kids["k2"].reply = error("local_error")
    assert route(miss_failover(build, return_best_on_error=True), get()).kind == "timeout"


def test_deletes_fail_over_until_deleted(kids, build):
    kids.add("k0", NOT_FOUND)
    kids.add("k1", DELETED)
    assert route(miss_failover(build), delete()) is DELETED
    assert kids.asked() == [1, 1, 0]


def test_other_operations_go_to_the_first_child_only(kids, build):
    kids.add("k0", error("timeout"))
    assert route(miss_failover(build), set_()).kind == "timeout"
    assert kids.asked() == [1, 0, 0]


def test_meta_gets(kids, build):
    kids.add("k0", MetaReply(b"EN"))
    kids.add("k1", MetaReply(b"VA", value=b"v"))
    assert route(miss_failover(build), meta(b"mg", b"k", b"v")).code == b"VA"
    assert kids.asked() == [1, 1, 0]


def test_deferred_replies(kids, build):
    first = kids.add("k0", MISS, deferred=True)
    second = kids.add("k1", hit(), deferred=True)
    replies = []
    miss_failover(build).route(get(), replies.append)
    assert kids.asked() == [1, 0, 0]
    first.release()
    assert kids.asked() == [1, 1, 0] and replies == []
    second.release()
    assert len(replies) == 1 and replies[0].values


def test_collapses(kids, build):
    assert miss_failover(build, 1) is kids["k0"]
    assert isinstance(miss_failover(build, 0), NullRoute)
    assert build("MissFailoverRoute|Rec|k0") is kids["k0"]
    assert miss_failover(build, 2).traverse(get()) == [kids["k0"], kids["k1"]]


def test_return_best_on_error_must_be_a_bool(kids, build):
    with pytest.raises(ConfigError, match="return_best_on_error"):
        miss_failover(build, return_best_on_error="yes")
