"""ModifyKeyRoute: key rewriting as mcrouter's ModifyKeyRoute does it."""

import pytest

from pymc.router.jsonc import ConfigError
from pymc.router.routes.modify_key import ModifyKeyRoute, key_error

from ..recording import Recorder, build as meta, get, route, set_


def modify(build, **options):
    return build({"type": "ModifyKeyRoute", "target": "Rec|t", **options})


def sent_key(kids, handle, key):
    route(handle, get(key))
    return kids["t"].seen[-1].keys[0]


@pytest.mark.parametrize("key, expected", [
    (b"/a/b/a", b"/a/b/fooa"), (b"foo", b"/a/b/foo"), (b"/b/c/o", b"/a/b/fooo"),
    (b"/a/b/foox", b"/a/b/foox"), (b"/x/y/foox", b"/a/b/foox")])
def test_mcrouter_doc_example(kids, build, key, expected):
    handle = modify(build, set_routing_prefix="/a/b/", ensure_key_prefix="foo")
    assert handle.name == "modify-key"
    assert sent_key(kids, handle, key) == expected


def test_routing_prefix_is_normalised_and_empty_removes_it(kids, build):
    assert sent_key(kids, modify(build, set_routing_prefix="a/b"), b"k") == b"/a/b/k"
    assert sent_key(kids, modify(build, set_routing_prefix=""), b"/a/b/k") == b"k"


def test_unchanged_key_sends_the_same_request(kids, build):
    req = get(b"/a/b/fook")
    route(modify(build, set_routing_prefix="/a/b/", ensure_key_prefix="foo"), req)
    assert kids["t"].seen == [req] and kids["t"].seen[0] is req


def test_replace_key_prefix(kids, build):
    handle = modify(build, replace_key_prefix="old:", ensure_key_prefix="new:")
    assert sent_key(kids, handle, b"/r/c/old:1") == b"/r/c/new:1"
    assert sent_key(kids, handle, b"other") == b"new:other"
    assert sent_key(kids, handle, b"new:2") == b"new:2"


def test_modify_inplace_overwrites(kids, build):
    handle = modify(build, ensure_key_prefix="ab", modify_inplace=True)
    assert sent_key(kids, handle, b"xyz") == b"abz"
    assert sent_key(kids, handle, b"x") == b"abx"  # shorter than the prefix: prepended


def test_key_suffix(kids, build):
    handle = modify(build, set_key_suffix=":v2")
    assert sent_key(kids, handle, b"/a/b/k") == b"/a/b/k:v2"
    both = modify(build, ensure_key_prefix="p", set_key_suffix="s")
    assert sent_key(kids, both, b"k") == b"pks"
    assert sent_key(kids, both, b"pk") == b"pks"


def test_request_is_copied_not_changed(kids, build):
    req = set_(b"k", b"data", exptime=5)
    route(modify(build, ensure_key_prefix="p:"), req)
    sent = kids["t"].seen[0]
    assert req.keys == [b"k"] and sent.keys == [b"p:k"]
    assert (sent.command, sent.data, sent.exptime) == (b"set", b"data", 5)


def test_meta_requests(kids, build):
    route(modify(build, ensure_key_prefix="p:"), meta(b"mg", b"k", b"v"))
    assert kids["t"].seen[0].key == b"p:k"


def test_too_long_key_is_a_local_error(kids, build):
    handle = modify(build, set_key_suffix="x")
    reply = route(handle, get(b"k" * 250))
    assert reply.kind == "local_error"
    assert reply.line() == b"SERVER_ERROR ModifyKeyRoute: invalid key: invalid key: too long\r\n"
    assert not kids["t"].seen
    assert len(route(handle, get(b"k" * 249)) and kids["t"].seen[0].keys[0]) == 250


def test_removing_everything_is_a_missing_key(kids, build):
    handle = modify(build, set_routing_prefix="")
    assert route(handle, get(b"/a/b/")).message.endswith(b"invalid key: missing")


def test_replies_pass_through_deferred(kids, build):
    target = kids.add("t", deferred=True)
    replies = []
    modify(build, ensure_key_prefix="p").route(get(), replies.append)
    assert replies == []
    target.release()
    assert len(replies) == 1 and replies[0].result == b"END"


def test_traverse(kids, build):
    assert modify(build, ensure_key_prefix="p").traverse(get()) == [kids["t"]]


def test_key_error():
    assert key_error(b"ok") is None
    assert key_error(b"a b") == "invalid key: space or control character"
    assert key_error(b"a\x7f") == "invalid key: space or control character"
    assert key_error(b"a b", check_space=False) is None
    assert key_error(b"\xff") is None


@pytest.mark.parametrize("options, message", [
    ({"set_routing_prefix": "/a/"}, r"set_routing_prefix: Routing prefix \(/a/\) should be"),
    ({"set_routing_prefix": "/a/b/c/"}, "should be of the form /region/cluster/"),
    ({"ensure_key_prefix": "a b"}, "invalid key prefix 'a b', invalid key: space"),
    ({"replace_key_prefix": "x" * 251}, "invalid key prefix .*too long"),
    ({"set_key_suffix": "\t"}, "invalid key suffix"),
    ({"replace_key_prefix": "a", "modify_inplace": True}, "cannot be used together"),
    ({"modify_inplace": 1}, "'modify_inplace' is not a boolean"),
    ({"ensure_key_prefix": 3}, "'ensure_key_prefix' is not a string"),
])
def test_bad_config(kids, build, options, message):
    with pytest.raises(ConfigError, match=message):
        modify(build, **options)


def test_target_is_required(build):
    with pytest.raises(ConfigError, match="ModifyKeyRoute: no target"):
        build({"type": "ModifyKeyRoute"})
    with pytest.raises(ConfigError, match="should be an object"):
        build("ModifyKeyRoute|Rec|t")


def test_direct_construction():
    target = Recorder("t")
    handle = ModifyKeyRoute(target, key_suffix=b"!")
    route(handle, get(b"k"))
    assert target.keys == [b"k!"]
