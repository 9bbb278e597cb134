"""AllSyncRoute: everyone gets the request; the worst reply wins."""

import pytest

from pymc.router.jsonc import ConfigError
from pymc.router.routes.all_sync import AllSyncRoute
from pymc.router.routes.null import NullRoute

from ..recording import (MISS, NOT_STORED, STORED, MetaReply, build as meta, error, get,
                         route, set_)


def test_sends_to_every_child_and_waits_for_all(kids, build):
    handle = build({"type": "AllSyncRoute", "children": ["Rec|a", "Rec|b", "Rec|c"]})
    assert isinstance(handle, AllSyncRoute) and handle.name == "all-sync"
    req = set_()
    assert route(handle, req) is not None
    assert [kids[n].seen for n in "abc"] == [[req]] * 3


@pytest.mark.parametrize("replies, expected", [
    ([STORED, STORED], 0),
    ([STORED, NOT_STORED], 1),
    ([NOT_STORED, error("timeout"), STORED], 1),
    ([error("timeout"), error("remote_error")], 1),
    ([error("remote_error"), error("local_error"), error("timeout")], 1),
    ([error("local_error"), error("client_error")], 1),
    # Ties go to the first child: tko and timeout share severity 5.
    ([STORED, error("tko"), error("timeout")], 1),
    ([error("timeout"), error("tko")], 0),
])
def test_answers_with_the_worst_reply(kids, build, replies, expected):
    for index, reply in enumerate(replies):
        kids.add(f"k{index}", reply)
    handle = build({"type": "AllSyncRoute",
                    "children": [f"Rec|k{i}" for i in range(len(replies))]})
    assert route(handle, set_()) is replies[expected]


def test_short_form_lists_children(kids, build):
    kids.add("a", MISS)
    assert build({"type": "AllSyncRoute", "children": "Rec|a"}) is kids["a"]
    assert build("AllSyncRoute|Rec|a") is kids["a"]


def test_waits_for_deferred_replies_in_any_order(kids, build):
    slow = kids.add("a", STORED, deferred=True)
    fast = kids.add("b", error("timeout"), deferred=True)
    handle = build({"type": "AllSyncRoute", "children": ["Rec|a", "Rec|b"]})
    replies = []
    handle.route(set_(), replies.append)
    fast.release()
    assert replies == []
    slow.release()
    assert len(replies) == 1 and replies[0].kind == "timeout"


def test_meta_replies_are_ranked_by_their_result(kids, build):
    kids.add("a", MetaReply(b"HD"))
    kids.add("b", MetaReply(b"NS"))
    handle = build({"type": "AllSyncRoute", "children": ["Rec|a", "Rec|b"]})
    assert route(handle, meta(b"ms", b"k", data=b"v")).code == b"NS"


def test_one_child_is_that_child(kids, build):
    assert build({"type": "AllSyncRoute", "children": ["Rec|a"]}) is kids["a"]


@pytest.mark.parametrize("json", [{"type": "AllSyncRoute", "children": []},
                                  {"type": "AllSyncRoute"}, "AllSyncRoute|"])
def test_no_children_is_a_null_route(build, json):
    handle = build(json)
    assert isinstance(handle, NullRoute)
    assert route(handle, get()).result == b"END"


def test_bare_type_name_needs_children(build):
    with pytest.raises(ConfigError, match="children"):
        build("AllSyncRoute")


def test_traverse_lists_all_children(kids, build):
    handle = build({"type": "AllSyncRoute", "children": ["Rec|a", "Rec|b"]})
    assert handle.traverse(get()) == [kids["a"], kids["b"]]
