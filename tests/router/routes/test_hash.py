"""HashRoute: one child per key, chosen as mcrouter's hash functions choose."""

import pytest

from pymc.protocol.messages import Request
from pymc.router import hashing
from pymc.router.factory import RouteFactory
from pymc.router.jsonc import ConfigError
from pymc.router.keys import routing_key
from pymc.router.routes import hash as hash_module
from pymc.router.routes.error import ErrorRoute
from pymc.router.routes.failover import FailoverRoute
from pymc.router.routes.hash import HashRoute, make_selector
from pymc.router.routes.null import NullRoute
from tests.conftest import SHARED

from ..recording import MISS, build as meta, error, get, hit, route, set_

VECTORS = SHARED / "vectors"
needs_vectors = pytest.mark.skipif(not VECTORS.is_dir(), reason="shared/vectors not beside repo")


def rows(name: str) -> list[list[bytes]]:
    lines = (VECTORS / name).read_bytes().split(b"\n")
    return [line.split(b"\t") for line in lines if line]


def hashed(build, n, **options):
    return build({"type": "HashRoute", "children": [f"Rec|c{i}" for i in range(n)],
                  **options})


def picked(kids, handle, key: bytes, n: int) -> int:
    """Index of the child that received a get for ``key``."""
    before = kids.asked(n, "c")
    route(handle, get(key))
    after = kids.asked(n, "c")
    moved = [i for i in range(n) if after[i] != before[i]]
    assert len(moved) == 1
    return moved[0]


# -- known answers ----------------------------------------------------------------------------

@needs_vectors
@pytest.mark.parametrize("hash_func, file", [("Ch3", "ch3_vectors.tsv"),
                                             ("Crc32", "crc32_vectors.tsv")])
def test_vectors_pick_the_same_child(kids, build, hash_func, file):
    routes = {}
    checked = 0
    for key, n, index in rows(file):
        n = int(n)
        if n == 1 or routing_key(key) != key:  # one child is never hashed
            continue
        if n not in routes:
            routes[n] = hashed(build, n, hash_func=hash_func)
        assert picked(kids, routes[n], key, n) == int(index), key
        checked += 1
    assert checked >= 60


@needs_vectors
def test_weighted_ch3_vectors(kids, build):
    cases = rows("wch3_vectors.tsv")
    for key, weights, index in cases:
        weights = [float(w) for w in weights.split(b",")]
        n = len(weights)
        handle = hashed(build, n, hash_func="WeightedCh3", weights=weights)
        assert picked(kids, handle, key, n) == int(index), key
    assert len(cases) >= 60


@needs_vectors
def test_routing_vectors_hash_the_routing_key(kids, build):
    routes = {}
    for full, _routing, n, index in rows("ch3_routing_vectors.tsv"):
        n = int(n)
        if n == 1:
            continue
        if n not in routes:
            routes[n] = hashed(build, n)
        assert picked(kids, routes[n], full, n) == int(index), full


def test_routing_prefix_and_hash_stop_do_not_move_a_key(kids, build):
    handle = hashed(build, 8)
    home = picked(kids, handle, b"user:1", 8)
    assert picked(kids, handle, b"/eqiad/mw/user:1", 8) == home
    assert picked(kids, handle, b"user:1|#|profile", 8) == home


def test_salt_is_appended_to_the_routing_key(kids, build):
    handle = hashed(build, 8, salt="abc")
    assert handle.name == "selection|hash|Ch3|salt=abc"
    for i in range(30):
        key = b"/r/c/key%d|#|tail" % i
        assert picked(kids, handle, key, 8) == hashing.ch3(b"key%dabc" % i, 8)


def test_const_shard(kids, build):
    handle = hashed(build, 5, hash_func="ConstShard")
    assert picked(kids, handle, b"user:3:name", 5) == 3
    assert picked(kids, handle, b"user:9:name", 5) == hashing.ch3(b"user:9:name", 5)


# -- shape and names --------------------------------------------------------------------------

def test_name_and_traverse(kids, build):
    handle = hashed(build, 4)
    assert isinstance(handle, HashRoute) and handle.name == "selection|hash|Ch3"
    assert hashed(build, 4, hash_func="Crc32").name == "selection|hash|Crc32"
    index = hashing.ch3(b"k", 4)
    assert handle.traverse(get(b"k")) == [kids[f"c{index}"]]
    assert all(not kids[f"c{i}"].seen for i in range(4))  # traverse sends nothing


def test_one_child_is_that_child_without_hashing(kids, build):
    assert build({"type": "HashRoute", "children": ["Rec|only"],
                  "hash_func": "WeightedCh3"}) is kids["only"]
    assert build("HashRoute|Rec|only") is kids["only"]


def test_no_children_is_an_error_route_as_in_mcrouter(build):
    handle = build({"type": "HashRoute", "children": [], "name": "empty"})
    assert isinstance(handle, ErrorRoute)
    reply = route(handle, get())
    assert reply.kind == "local_error"
    assert reply.line() == b"SERVER_ERROR HashRoute with empty children, name: empty\r\n"
    assert isinstance(build({"type": "HashRoute"}), ErrorRoute)  # no "children" at all


def test_error_on_empty_false_is_a_null_route(build):
    handle = build({"type": "HashRoute", "children": [], "error_on_empty": False})
    assert isinstance(handle, NullRoute)
    assert route(handle, get()).result == b"END"


def test_hash_func_latest_builds_a_latest_route(kids, build):
    handle = hashed(build, 8, hash_func="Latest", failover_count=3)
    assert isinstance(handle, FailoverRoute) and len(handle.children) == 3


def test_meta_requests_hash_their_key(kids, build):
    handle = hashed(build, 8)
    route(handle, meta(b"mg", b"user:7", b"v"))
    index = hashing.ch3(b"user:7", 8)
    assert kids[f"c{index}"].seen[0].key == b"user:7"


# -- replies pass through ---------------------------------------------------------------------

def test_child_reply_is_the_answer_even_deferred(kids, build):
    index = hashing.ch3(b"k", 3)
    child = kids.add(f"c{index}", hit(), deferred=True)
    handle = hashed(build, 3)
    replies = []
    handle.route(get(b"k"), replies.append)
    assert replies == []
    child.release()
    assert len(replies) == 1 and replies[0].values[0].data == b"v"


def test_errors_are_replies(kids, build):
    index = hashing.ch3(b"k", 3)
    kids.add(f"c{index}", error("timeout"))
    assert route(hashed(build, 3), set_(b"k")).kind == "timeout"


# -- config errors ----------------------------------------------------------------------------

def test_unknown_hash_function(kids, build):
    with pytest.raises(ConfigError, match="Unknown hash function: Nope"):
        hashed(build, 3, hash_func="Nope")


def test_unsupported_mcrouter_hash_function(kids, build):
    with pytest.raises(ConfigError, match="Rendezvous is not supported"):
        hashed(build, 3, hash_func="Rendezvous")


@pytest.mark.parametrize("options, message", [
    ({"salt": 5}, "'salt' is not a string"),
    ({"hash_func": 1}, "'hash_func' is not a string"),
    ({"hash_func": "WeightedCh3"}, "not an object or no weights"),
    ({"hash_func": "WeightedCh3", "weights": 1}, "weights is not array"),
    ({"hash_func": "WeightedCh3", "weights": [0.5, "x"]}, "weight is not number"),
    ({"hash_func": "WeightedCh3", "weights": [1.5]}, r"must be in range \[0, 1.0\]"),
    ({"bucketize": True}, "bucketize is not supported"),
])
def test_bad_options(kids, build, options, message):
    with pytest.raises(ConfigError, match=message):
        hashed(build, 3, **options)


def test_missing_weights_default_to_half_and_extra_are_ignored(kids, build):
    short = hashed(build, 3, hash_func="WeightedCh3", weights=[1.0])
    full = hashed(build, 3, hash_func="WeightedCh3", weights=[1.0, 0.5, 0.5, 0.0])
    for i in range(50):
        key = b"key%d" % i
        expected = hashing.weighted_ch3(key, [1.0, 0.5, 0.5])
        assert short.traverse(get(key))[0] is kids[f"c{expected}"]
        assert full.traverse(get(key))[0] is kids[f"c{expected}"]


def test_errors_name_the_path(kids):
    json = {"route": {"type": "HashRoute", "children": ["Rec|a", "Rec|b"],
                      "hash_func": "Nope"}}
    with pytest.raises(ConfigError, match=r"^route: Unknown hash function: Nope"):
        RouteFactory().create(json["route"], "route")


# -- the selector PoolRoute shares ------------------------------------------------------------

def test_selector_takes_full_keys():
    select = make_selector("Ch3", "", None, 10)
    assert select(b"/a/b/foo|#|x") == hashing.ch3(b"foo", 10)
    salted = make_selector("Crc32", "s", None, 10)
    assert salted(b"foo") == hashing.crc32(b"foos", 10)
    weighted = make_selector("WeightedCh3", b"", [0.0, 1.0])
    assert {weighted(b"k%d" % i) for i in range(50)} == {1}


@pytest.mark.parametrize("args, message", [
    (("Ch3", "", None, 0), "Pool size out of range"),
    (("Ch3", "", None, None), "Pool size out of range"),
    (("WeightedCh3", "", None, 3), "no weights"),
    (("WeightedCh3", "", [1.0], 3), "Invalid pool size: 3"),
    (("Foo", "", None, 3), "Unknown hash function: Foo"),
])
def test_selector_errors(args, message):
    with pytest.raises(ConfigError, match=message):
        make_selector(*args)


def test_selector_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(hash_module, "MEMO_LIMIT", 4)
    calls = []
    monkeypatch.setitem(hash_module.HASH_FUNCTIONS, "Ch3",
                        lambda key, n: calls.append(key) or hashing.ch3(key, n))
    select = make_selector("Ch3", "", None, 5)
    memo = next(cell.cell_contents for cell in select.__closure__
                if isinstance(cell.cell_contents, dict))
    for i in range(10):
        assert select(b"k%d" % i) == hashing.ch3(b"k%d" % i, 5)
        assert len(memo) <= 4
    calls.clear()
    select(b"k9")
    select(b"k9")
    assert calls == []  # remembered
    assert select(b"k0") == hashing.ch3(b"k0", 5) and calls == [b"k0"]


def test_a_miss_from_the_child_is_a_miss(kids, build):
    for i in range(3):
        kids.add(f"c{i}", MISS)
    assert route(hashed(build, 3), Request(b"get", [b"x"])) is MISS
