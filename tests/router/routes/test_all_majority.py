"""AllMajorityRoute: the result a majority agrees on; without one, the worst most common."""

import pytest

from pymc.protocol.messages import Reply
from pymc.router.routes.all_majority import AllMajorityRoute
from pymc.router.routes.null import NullRoute

from ..recording import DELETED, NOT_FOUND, NOT_STORED, STORED, delete, error, set_


def run(kids, handle, req, arrivals):
    """Release children in ``arrivals`` order [(index, reply)]; (answers, releases used)."""
    for index, reply in arrivals:
        kids[f"k{index}"].reply = reply
    answers, when = [], None
    handle.route(req, answers.append)
    for step, (index, _) in enumerate(arrivals, 1):
        kids[f"k{index}"].release()
        if answers and when is None:
            when = step
    return answers, when


def build_majority(kids, build, n):
    for index in range(n):
        kids.add(f"k{index}", deferred=True)
    return build({"type": "AllMajorityRoute", "children": [f"Rec|k{i}" for i in range(n)]})


def test_answers_once_a_majority_agrees(kids, build):
    handle = build_majority(kids, build, 5)
    assert isinstance(handle, AllMajorityRoute) and handle.name == "all-majority"
    first, second = Reply(b"STORED"), Reply(b"STORED")
    answers, when = run(kids, handle, set_(), [
        (0, STORED), (1, error("timeout")), (2, first), (3, second), (4, error("timeout"))])
    # 3 of 5 stored after the fourth arrival; the reply that made the count is returned.
    assert answers == [second] and when == 4


@pytest.mark.parametrize("n, needed", [(2, 2), (3, 2), (4, 3), (5, 3)])
def test_majority_is_more_than_half(kids, build, n, needed):
    handle = build_majority(kids, build, n)
    answers, when = run(kids, handle, set_(), [(i, STORED) for i in range(n)])
    assert answers == [STORED] and when == needed


def test_without_majority_the_worst_of_the_most_common(kids, build):
    handle = build_majority(kids, build, 4)
    timeout = error("timeout")
    answers, when = run(kids, handle, set_(), [
        (0, STORED), (1, timeout), (2, STORED), (3, error("timeout"))])
    # 2 stored, 2 timeouts: a tie on count goes to the worse result; its first reply to reach
    # that count stays (the second timeout only ties with the leader).
    assert when == 4 and answers[0].kind == "timeout"


def test_most_common_beats_worse(kids, build):
    handle = build_majority(kids, build, 4)
    answers, _ = run(kids, handle, delete(), [
        (0, error("remote_error")), (1, NOT_FOUND), (2, NOT_FOUND), (3, DELETED)])
    assert answers == [NOT_FOUND]


def test_equal_severity_tie_keeps_the_first_leader(kids, build):
    handle = build_majority(kids, build, 2)
    answers, _ = run(kids, handle, set_(), [(1, error("tko")), (0, error("timeout"))])
    assert answers[0].kind == "tko"
    handle = build_majority(kids, build, 2)
    answers, _ = run(kids, handle, set_(), [(0, STORED), (1, NOT_STORED)])
    assert answers == [NOT_STORED]


def test_late_replies_are_dropped(kids, build):
    handle = build_majority(kids, build, 3)
    answers, when = run(kids, handle, set_(), [(2, STORED), (0, STORED), (1, error("busy"))])
    assert answers == [STORED] and when == 2


def test_collapses(kids, build):
    assert build({"type": "AllMajorityRoute", "children": ["Rec|a"]}) is kids["a"]
    assert isinstance(build({"type": "AllMajorityRoute"}), NullRoute)
