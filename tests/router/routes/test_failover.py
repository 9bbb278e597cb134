"""FailoverRoute: children in order, moving on only for failover errors."""

import pytest

from pymc.protocol.messages import Reply, Request
from pymc.router.jsonc import ConfigError
from pymc.router.routes.failover import FailoverRateLimiter, FailoverRoute
from pymc.router.routes.null import NullRoute

from ..recording import (MISS, STORED, build as meta, delete, error, get, hit, route, set_)


def failover(build, n=3, **options):
    return build({"type": "FailoverRoute", "children": [f"Rec|k{i}" for i in range(n)],
                  **options})


def test_first_good_reply_wins(kids, build):
    kids.add("k0", error("timeout"))
    kids.add("k1", hit())
    handle = failover(build)
    assert isinstance(handle, FailoverRoute) and handle.name == "failover"
    assert route(handle, get()).result == b"END"
    assert kids.asked() == [1, 1, 0]


def test_a_miss_is_never_a_failover(kids, build):
    kids.add("k0", MISS)
    assert route(failover(build), get()) is MISS
    assert kids.asked() == [1, 0, 0]


@pytest.mark.parametrize("kind", sorted(
    ["busy", "shutdown", "tko", "try_again", "local_error", "connect_error",
     "connect_timeout", "timeout", "remote_error", "deadline_exceeded"]))
def test_default_failover_errors(kids, build, kind):
    kids.add("k0", error(kind))
    assert route(failover(build), set_()).result == b"NOT_STORED"  # k1's default reply
    assert kids.asked() == [1, 1, 0]


@pytest.mark.parametrize("kind", ["client_error", "bad_key", "bad_value", "aborted", "ooo"])
def test_other_errors_are_answers(kids, build, kind):
    kids.add("k0", error(kind))
    assert route(failover(build), set_()).kind == kind
    assert kids.asked() == [1, 0, 0]


def test_a_backend_server_error_line_fails_over(kids, build):
    kids.add("k0", Reply(b"SERVER_ERROR", b"out of memory"))
    kids.add("k1", STORED)
    assert route(failover(build), set_()) is STORED


def test_all_failing_gives_the_last_reply(kids, build):
    for index, kind in enumerate(("tko", "timeout", "connect_error")):
        kids.add(f"k{index}", error(kind))
    assert route(failover(build), get()).kind == "connect_error"
    assert kids.asked() == [1, 1, 1]


def test_failover_errors_list_applies_to_every_class(kids, build):
    kids.add("k0", error("timeout"))
    handle = failover(build, failover_errors=["tko"])
    assert route(handle, get()).kind == "timeout"
    assert route(handle, set_()).kind == "timeout"
    assert route(handle, delete()).kind == "timeout"
    kids["k0"].reply = error("tko")
    assert route(handle, get()).result == b"END"


@pytest.mark.parametrize("kind", ["overloaded", "hot_key", "bad_flags", "permission_denied"])
def test_failover_errors_may_name_any_error_result(kids, build, kind):
    # mcrouter's isErrorResult names, from results.ERRORS; none is a default failover error
    kids.add("k0", error(kind))
    assert route(failover(build), get()).kind == kind
    kids.add("k1", hit())
    assert route(failover(build, failover_errors=[kind]), get()).result == b"END"
    assert kids.asked() == [2, 1, 0]


def test_failover_errors_by_class(kids, build):
    kids.add("k0", error("timeout"))
    handle = failover(build, failover_errors={"gets": ["timeout"], "deletes": ["tko"]})
    assert route(handle, get()).result == b"END"          # gets: timeout listed
    assert route(handle, delete()).kind == "timeout"      # deletes: only tko
    assert route(handle, set_()).result == b"NOT_STORED"  # updates: the default list
    assert kids.asked() == [3, 2, 0]


def test_other_operations_always_use_the_default_list(kids, build):
    kids.add("k0", error("timeout"))
    handle = failover(build, failover_errors=["tko"])
    assert route(handle, Request(b"incr", [b"k"], delta=1)).result == b"NOT_FOUND"
    assert kids.asked() == [1, 1, 0]


def test_meta_requests_use_their_operation_class(kids, build):
    kids.add("k0", error("timeout"))
    handle = failover(build, failover_errors={"updates": ["tko"]})
    assert route(handle, meta(b"ms", b"k", data=b"v")).kind == "timeout"
    assert route(handle, meta(b"mg", b"k", b"v")).code == b"EN"


@pytest.mark.parametrize("errors, message", [
    ("tko", "either an array or an object"),
    (["tko", "timeouts"], "'timeouts' is not a valid error type"),
    (["notfound"], "'notfound' is not a valid error type"),
    ([5], "is not a string"),
    ({"gets": "tko"}, "not an array"),
])
def test_bad_failover_errors(kids, build, errors, message):
    with pytest.raises(ConfigError, match=message) as info:
        failover(build, failover_errors=errors)
    assert "failover_errors" in str(info.value)


def test_waits_for_a_deferred_reply_before_failing_over(kids, build):
    normal = kids.add("k0", error("timeout"), deferred=True)
    spare = kids.add("k1", STORED, deferred=True)
    replies = []
    failover(build).route(set_(), replies.append)
    assert kids.asked() == [1, 0, 0]
    normal.release()
    assert kids.asked() == [1, 1, 0] and replies == []
    spare.release()
    assert replies == [STORED]


def test_failover_limit_rate_caps_failovers(kids, build):
    kids.add("k0", error("timeout"))
    handle = failover(build, failover_limit={"rate": 0.5, "burst": 1})
    kinds = [getattr(route(handle, set_()), "kind", "failed over") for _ in range(4)]
    assert kinds == ["failed over", "timeout", "failed over", "timeout"]


def test_failover_limit_does_not_charge_tko(kids, build):
    kids.add("k0", error("tko"))
    handle = failover(build, failover_limit={"rate": 0})
    assert route(handle, set_()).result == b"NOT_STORED"
    kids["k0"].reply = error("timeout")
    assert route(handle, set_()).kind == "timeout"


def test_rate_limiter_starts_with_a_full_burst():
    limiter = FailoverRateLimiter(0.1, 3)
    limiter.count_request()
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize("limit, message", [
    (2, "not an object"), ({}, "'rate' property is missing"),
    ({"rate": "half"}, "'rate' is not a number"),
    ({"rate": 0.5, "burst": "lots"}, "'burst' is not a number"),
])
def test_bad_failover_limit(kids, build, limit, message):
    with pytest.raises(ConfigError, match=message):
        failover(build, failover_limit=limit)


def test_accepted_and_ignored_options(kids, build):
    kids.add("k0", error("timeout"))
    handle = failover(build, failover_policy={"type": "DeterministicOrderPolicy",
                                              "max_tries": 2, "max_error_tries": 1},
                      failover_tag=True, rate_limit={"anything": 1})
    assert route(handle, set_()).result == b"NOT_STORED"
    assert kids.asked() == [1, 1, 0]


@pytest.mark.parametrize("options, message", [
    ({"failover_policy": "InOrder"}, "failover_policy is not object"),
    ({"failover_policy": {}}, "missing 'type'"),
    ({"failover_tag": "yes"}, "'failover_tag' is not a boolean"),
    ({"enable_lease_pairing": True}, "name is required"),
])
def test_bad_options(kids, build, options, message):
    with pytest.raises(ConfigError, match=message):
        failover(build, **options)


def test_a_name_is_shown_with_the_target_count(kids, build):
    assert failover(build, 2, name="gutter").name == "failover:gutter:failover_targets=2"


def test_collapses(kids, build):
    assert failover(build, 1) is kids["k0"]
    assert isinstance(failover(build, 0), NullRoute)
    assert isinstance(build({"type": "FailoverRoute"}), NullRoute)
    assert build("FailoverRoute|Rec|k0") is kids["k0"]


def test_traverse_lists_all_children(kids, build):
    assert failover(build, 2).traverse(get()) == [kids["k0"], kids["k1"]]
