"""WarmUpRoute: reads from cold, falling back to warm and copying warm hits into cold."""

import pytest

from pymc.protocol.messages import Reply, Request, Value
from pymc.protocol.meta import MetaReply
from pymc.router.jsonc import ConfigError
from pymc.router.routes.warm_up import WarmUpRoute

from ..recording import (MISS, STORED, build as meta, delete, error, get, hit, route, set_)


def warm_up(build, **options):
    return build({"type": "WarmUpRoute", "cold": "Rec|cold", "warm": "Rec|warm", **options})


def test_name_and_traverse(kids, build):
    handle = warm_up(build)
    assert isinstance(handle, WarmUpRoute) and handle.name == "warm-up"
    assert handle.traverse(get()) == [kids["cold"], kids["warm"]]


def test_cold_hit_is_the_answer(kids, build):
    kids.add("cold", hit(data=b"c"))
    assert route(warm_up(build), get()).values[0].data == b"c"
    assert not kids["warm"].seen


def test_cold_miss_warm_hit_answers_and_adds_to_cold(kids, build):
    kids.add("cold", MISS)
    kids.add("warm", Reply(b"END", values=[Value(b"k", 7, b"w")]))
    reply = route(warm_up(build, exptime=30), get(b"/a/b/k"))
    assert reply.values[0].data == b"w"
    get_req, add = kids["cold"].seen
    assert get_req.command == b"get"
    assert add == Request(b"add", [b"/a/b/k"], 7, 30, b"w")


def test_default_exptime_is_zero(kids, build):
    kids.add("cold", MISS)
    kids.add("warm", hit())
    route(warm_up(build), get())
    assert kids["cold"].seen[1].exptime == 0


def test_both_miss_gives_warm_reply_and_no_add(kids, build):
    kids.add("cold", MISS)
    kids.add("warm", error("timeout"))
    assert route(warm_up(build), get()).kind == "timeout"  # mcrouter returns warm's reply
    assert len(kids["cold"].seen) == 1


def test_add_is_sent_after_the_answer(kids, build):
    kids.add("cold", lambda req: MISS if req.command == b"get" else STORED)
    warm = kids.add("warm", hit(), deferred=True)
    handle = warm_up(build)
    events = []
    handle.route(get(), lambda reply: events.append(("done", len(kids["cold"].seen))))
    assert events == []
    warm.release()
    assert events == [("done", 1)] and kids["cold"].seen[1].command == b"add"


@pytest.mark.parametrize("command", [b"gets", b"gat", b"gats"])
def test_refetching_reads_add_then_ask_cold_again(kids, build, command):
    answers = iter([MISS, STORED, hit(data=b"again")])
    kids.add("cold", lambda req: next(answers))
    kids.add("warm", Reply(b"END", values=[Value(b"k", 3, b"w")]))
    req = Request(command, [b"k"], exptime=99)
    reply = route(warm_up(build, exptime=5), req)
    assert reply.values[0].data == b"again"
    first, add, again = kids["cold"].seen
    assert first is req and again is req
    assert add == Request(b"add", [b"k"], 3, 5 if command == b"gets" else 99, b"w")
    assert kids["warm"].seen == [Request(b"get", [b"k"])]  # a plain get


def test_refetching_read_with_warm_miss_answers_cold_reply(kids, build):
    cold_reply = Reply(b"END")
    kids.add("cold", cold_reply)
    kids.add("warm", MISS)
    assert route(warm_up(build), Request(b"gets", [b"k"])) is cold_reply
    assert len(kids["cold"].seen) == 1


def test_metaget_falls_back_to_warm_without_add(kids, build):
    kids.add("cold", MISS)
    kids.add("warm", hit())
    assert route(warm_up(build), Request(b"metaget", [b"k"])).values
    assert len(kids["cold"].seen) == 1


@pytest.mark.parametrize("req", [set_(), delete(), Request(b"incr", [b"k"], delta=1),
                                 Request(b"touch", [b"k"], exptime=5),
                                 Request(b"lease-get", [b"k"])])
def test_writes_and_others_go_to_cold_only(kids, build, req):
    kids.add("cold", STORED)
    assert route(warm_up(build), req) is STORED
    assert kids["cold"].seen == [req] and not kids["warm"].seen


def test_meta_get_warm_hit_with_value_warms_cold(kids, build):
    kids.add("cold", MetaReply(b"EN"))
    kids.add("warm", MetaReply(b"VA", [b"f12"], b"data"))
    req = meta(b"mg", b"k", b"v", b"f")
    reply = route(warm_up(build, exptime=60), req)
    assert reply.code == b"VA" and reply.value == b"data"
    assert kids["warm"].seen == [req]
    assert kids["cold"].seen[1] == Request(b"add", [b"k"], 12, 60, b"data")


def test_meta_get_without_value_is_not_warmed(kids, build):
    kids.add("cold", MetaReply(b"EN"))
    kids.add("warm", MetaReply(b"HD"))
    assert route(warm_up(build), meta(b"mg", b"k")).code == b"HD"
    assert len(kids["cold"].seen) == 1


def test_meta_cold_hit_and_meta_writes(kids, build):
    kids.add("cold", MetaReply(b"VA", [], b"c"))
    assert route(warm_up(build), meta(b"mg", b"k", b"v")).value == b"c"
    route(warm_up(build), meta(b"ms", b"k", data=b"x"))
    route(warm_up(build), meta(b"md", b"k"))
    assert not kids["warm"].seen


def test_done_called_once_with_deferred_children(kids, build):
    cold = kids.add("cold", MISS, deferred=True)
    warm = kids.add("warm", MISS, deferred=True)
    replies = []
    warm_up(build).route(get(), replies.append)
    cold.release()
    assert replies == []
    warm.release()
    assert len(replies) == 1


@pytest.mark.parametrize("json, message", [
    ("WarmUpRoute|Rec|a", "should be object"),
    ({"type": "WarmUpRoute", "warm": "Rec|w"}, "no cold route"),
    ({"type": "WarmUpRoute", "cold": "Rec|c"}, "no warm route"),
    ({"type": "WarmUpRoute", "cold": "Rec|c", "warm": "Rec|w", "exptime": "1"},
     "'exptime' is not an integer"),
])
def test_bad_config(kids, build, json, message):
    with pytest.raises(ConfigError, match=message):
        build(json)
