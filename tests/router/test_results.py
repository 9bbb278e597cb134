"""mcrouter's result names: one list of error results (isErrorResult), used by ErrorRoute's
``result``, FailoverRoute's ``failover_errors``, TKO tracking and the error stats."""

import pytest

from pymc.router.factory import RouteFactory
from pymc.router.jsonc import ConfigError
from pymc.router.results import ERRORS, RESULTS, ErrorReply, severity
from pymc.router.tko import TkoTracker

from .recording import get, route

#: mcrouter's carbon::Result values from OOO (12) to OVERLOADED (35) without WAITING (31):
#: isErrorResult in lib/McResUtil.h, named as resultToString does without "mc_res_".
MCROUTER_ERRORS = {
    "ooo", "timeout", "connect_timeout", "connect_error", "busy", "try_again", "shutdown",
    "tko", "bad_command", "bad_key", "bad_flags", "bad_exptime", "bad_lease_id", "bad_cas_id",
    "bad_value", "aborted", "client_error", "local_error", "remote_error",
    "deadline_exceeded", "permission_denied", "hot_key", "overloaded"}


def test_error_results_are_mcroutes():
    assert ERRORS == MCROUTER_ERRORS
    assert len(RESULTS) == 36  # carbon::Result::NUM_RESULTS
    assert RESULTS.index("ooo") == 12 and RESULTS.index("waiting") == 31
    assert RESULTS[-1] == "overloaded"


@pytest.mark.parametrize("name", sorted(MCROUTER_ERRORS))
def test_every_error_result_is_accepted_by_error_route_and_failover_errors(name):
    factory = RouteFactory()
    for result in (name, f"mc_res_{name}"):
        handle = factory.create({"type": "ErrorRoute", "result": result})
        assert route(handle, get()).kind == name
    failover = factory.create({"type": "FailoverRoute", "children": ["NullRoute", "NullRoute"],
                               "failover_errors": [name]})
    assert failover.errors.by_class["gets"] == frozenset([name])


@pytest.mark.parametrize("name", ["unknown", "waiting", "found", "notfound", "stored"])
def test_results_that_are_not_errors_are_refused_by_both(name):
    with pytest.raises(ConfigError, match=f"ErrorRoute: result mc_res_{name} is not a valid"):
        RouteFactory().create({"type": "ErrorRoute", "result": f"mc_res_{name}"})
    with pytest.raises(ConfigError, match=f"Failover error '{name}' is not a valid error"):
        RouteFactory().create({"type": "FailoverRoute", "children": ["NullRoute"],
                               "failover_errors": [name]})


@pytest.mark.parametrize("kind, line", [
    ("bad_flags", b"CLIENT_ERROR bad flags\r\n"),
    ("bad_exptime", b"CLIENT_ERROR bad exptime\r\n"),
    ("bad_lease_id", b"CLIENT_ERROR bad lease_id\r\n"),
    ("bad_cas_id", b"CLIENT_ERROR bad cas_id\r\n"),
    ("permission_denied", b"SERVER_ERROR permission denied\r\n"),
    ("hot_key", b"SERVER_ERROR hot key\r\n"),
    ("overloaded", b"SERVER_ERROR overloaded\r\n"),
    ("local_error", b"SERVER_ERROR local error\r\n"),
])
def test_error_lines_without_a_message_are_mcroutes(kind, line):
    assert ErrorReply(kind).line() == line  # mcrouter's errorResultStr


def test_every_error_result_has_its_own_line():
    assert all(ErrorReply(kind).line() != b"SERVER_ERROR unknown result\r\n"
               for kind in ERRORS)


def test_overloaded_ranks_with_bad_value():
    assert severity("overloaded") == severity("bad_value") == 6  # resultSeverity


def test_unknown_is_not_an_error_for_tko_tracking():
    # mcrouter's handleTko: a result that is not an error result counts as a success
    tracker = TkoTracker("127.0.0.1:1", 3, lambda: 0.0)
    owner = object()
    tracker.record("timeout", owner)
    tracker.record("timeout", owner)
    tracker.record("unknown", owner)
    assert tracker.consecutive_failures == 0
    tracker.record("timeout", owner)
    tracker.record("overloaded", owner)  # an error: neither counts nor resets
    assert tracker.consecutive_failures == 1
