"""ShadowRoute: the normal child answers; a key-hash-selected share is copied to shadows."""

import logging
import random

import pytest

from pymc.router.factory import RouteFactory
from pymc.router.hashing import spooky32
from pymc.router.jsonc import ConfigError
from pymc.router.routes.shadow import ShadowRoute, ShadowSettings

from ..recording import STORED, build as meta, error, get, hit, route, set_

#: mcrouter's test_shadow_route.py: keys f0..f99 with key_fraction_range [0, 0.1] shadow these.
MCROUTER_SHADOWED = [5, 7, 13, 33, 43, 46, 58, 71, 83, 85, 89, 91, 93]


def shadow_json(children, *shadows, **options):
    return {"type": "ShadowRoute", "children": children, "shadows": list(shadows), **options}


def build_list(json):
    """Every handle ``json`` stands for (ShadowRoute over a children list makes a list)."""
    return RouteFactory().create_list(json)


def test_mcrouter_key_fraction_known_answer(kids, build):
    handle = build(shadow_json("Rec|main", {"target": "Rec|s", "index_range": [0, 1],
                                            "key_fraction_range": [0.0, 0.1]}))
    assert isinstance(handle, ShadowRoute) and handle.name == "shadow"
    for i in range(100):
        route(handle, set_(b"f%d" % i))
    assert len(kids["main"].seen) == 100
    assert kids["s"].keys == [b"f%d" % i for i in MCROUTER_SHADOWED]


def test_fraction_uses_the_routing_key(kids, build):
    handle = build(shadow_json("Rec|main", {"target": "Rec|s", "index_range": [0, 1],
                                            "key_fraction_range": [0.0, 0.1]}))
    route(handle, get(b"/a/b/f5|#|x"))
    route(handle, get(b"/a/b/f6|#|x"))
    assert kids["s"].keys == [b"/a/b/f5|#|x"]  # the shadow gets the request as it came


def test_children_list_and_exclusive_index_range(kids, build):
    json = shadow_json(["Rec|a", "Rec|b", "Rec|c"],
                       {"target": "Rec|s1", "index_range": [0, 2],
                        "key_fraction_range": [0, 1]},
                       {"target": "Rec|s2", "index_range": [2, 3],
                        "key_fraction_range": [0, 1]})
    a, b, c = build_list(json)
    assert [type(h) for h in (a, b, c)] == [ShadowRoute] * 3
    assert [t.name for t, _ in a.shadows] == ["s1"]
    assert [t.name for t, _ in b.shadows] == ["s1"]
    assert [t.name for t, _ in c.shadows] == ["s2"]


def test_child_outside_every_range_is_not_wrapped(kids, build):
    handles = build_list(shadow_json(["Rec|a", "Rec|b"],
                                                  {"target": "Rec|s", "index_range": [1, 2],
                                                   "key_fraction_range": [0, 1]}))
    assert handles[0] is kids["a"] and isinstance(handles[1], ShadowRoute)


def test_no_index_range_covers_nothing_as_in_mcrouter(kids, build):
    assert build(shadow_json("Rec|a", {"target": "Rec|s", "key_fraction_range": [0, 1]})) \
        is kids["a"]


def test_no_shadows_field_gives_the_children(kids, build):
    assert build({"type": "ShadowRoute", "children": "Rec|a"}) is kids["a"]


def test_default_form_ignores_index_range(kids, build):
    handle = build({"type": "ShadowRoute", "default": "Rec|main",
                    "shadows": [{"target": "Rec|s", "key_fraction_range": [0, 1]}]})
    route(handle, get(b"x"))
    assert len(kids["s"].seen) == 1


def test_normal_reply_is_the_answer_and_shadow_replies_are_ignored(kids, build):
    kids.add("main", STORED)
    kids.add("s", error("timeout"))
    handle = build({"type": "ShadowRoute", "default": "Rec|main",
                    "shadows": [{"target": "Rec|s", "key_fraction_range": [0, 1]}]})
    assert route(handle, set_()) is STORED


def test_deferred_normal_and_pending_shadow(kids, build):
    main = kids.add("main", hit(), deferred=True)
    shadow = kids.add("s", deferred=True)
    handle = build({"type": "ShadowRoute", "default": "Rec|main",
                    "shadows": [{"target": "Rec|s", "key_fraction_range": [0, 1]}]})
    replies = []
    handle.route(get(), replies.append)
    assert len(shadow.seen) == 1 and replies == []
    shadow.release()
    assert replies == []
    main.release()
    assert len(replies) == 1 and replies[0].values


def test_normal_is_sent_before_shadows(kids, build):
    order = []
    kids.add("main", lambda req: order.append("main"))
    kids.add("s", lambda req: order.append("shadow"))
    handle = build({"type": "ShadowRoute", "default": "Rec|main",
                    "shadows": [{"target": "Rec|s", "key_fraction_range": [0, 1]}]})
    route(handle, get())
    assert order == ["main", "shadow"]


def test_keys_to_shadow(kids, build):
    handle = build({"type": "ShadowRoute", "default": "Rec|main",
                    "shadows": [{"target": "Rec|s", "keys_to_shadow": ["a", "b"]}]})
    for key in (b"a", b"c", b"/x/y/b", b"b|#|z"):
        route(handle, get(key))
    assert kids["s"].keys == [b"a", b"/x/y/b", b"b|#|z"]


def test_keys_to_shadow_apply_to_every_child(kids, build):
    handles = build_list(shadow_json(["Rec|a", "Rec|b"],
                                                  {"target": "Rec|s", "keys_to_shadow": ["k"]}))
    assert all(isinstance(h, ShadowRoute) for h in handles)


def test_requests_fraction():
    settings = ShadowSettings(key_fraction_range=(0, 1), requests_fraction=0.25,
                              rng=random.Random(1))
    hits = sum(settings.should_shadow(get(b"k")) for _ in range(4000))
    assert 800 < hits < 1200
    assert not ShadowSettings(key_fraction_range=(0, 1), requests_fraction=0.0) \
        .should_shadow(get(b"k"))


def test_range_ends_are_inclusive():
    key = b"f5"
    point = spooky32(key, 0) / 0xFFFFFFFF
    assert ShadowSettings(key_fraction_range=(0, point + 1e-12)).should_shadow(get(key))
    assert not ShadowSettings(key_fraction_range=(0, point - 1e-6)).should_shadow(get(key))


def test_meta_requests_are_shadowed_by_key(kids, build):
    handle = build(shadow_json("Rec|main", {"target": "Rec|s", "index_range": [0, 1],
                                            "key_fraction_range": [0.0, 0.1]}))
    route(handle, meta(b"mg", b"f5", b"v"))
    route(handle, meta(b"mg", b"f6", b"v"))
    assert [r.key for r in kids["s"].seen] == [b"f5"]


def test_traverse_lists_normal_then_shadows(kids, build):
    handle = build({"type": "ShadowRoute", "default": "Rec|main",
                    "shadows": [{"target": "Rec|s1", "key_fraction_range": [0, 1]},
                                {"target": "Rec|s2", "key_fraction_range": [0, 1]}]})
    assert handle.traverse(get()) == [kids["main"], kids["s1"], kids["s2"]]


@pytest.mark.parametrize("shadow", [
    "not an object", {"index_range": [0, 1]},
    {"target": "Rec|s", "key_fraction_range": [0.5, 0.1]},
    {"target": "Rec|s", "key_fraction_range": [0, 2]},
    {"target": "Rec|s", "key_fraction_range": [0]},
    {"target": "Rec|s", "index_range": [2, 1]},
    {"target": "Rec|s", "index_range": ["a", 1]},
    {"target": "Rec|s", "keys_to_shadow": ["k"], "index_range": [0, 1]},
    {"target": "Rec|s", "requests_fraction": "half"},
])
def test_malformed_shadows_are_skipped_with_a_warning(kids, build, caplog, shadow):
    with caplog.at_level(logging.WARNING):
        handle = build(shadow_json("Rec|a", shadow))
    assert handle is kids["a"]
    assert "ShadowRoute" in caplog.text


def test_shadows_not_an_array_is_ignored(kids, build):
    assert build({"type": "ShadowRoute", "children": "Rec|a", "shadows": {}}) is kids["a"]


@pytest.mark.parametrize("json, message", [
    ("ShadowRoute|Rec|a", "ShadowRoute should be an object"),
    ({"type": "ShadowRoute", "shadows": []}, "children not found"),
    ({"type": "ShadowRoute", "default": "Rec|a", "shadow_policy": "other",
      "shadows": [{"target": "Rec|s", "key_fraction_range": [0, 1]}]},
     "Invalid shadow policy: other"),
    ({"type": "ShadowRoute", "children": "Rec|a", "shadows": [], "shadow_policy": 1},
     "'shadow_policy' is not a string"),
])
def test_bad_config(kids, build, json, message):
    with pytest.raises(ConfigError, match=message):
        build(json)
