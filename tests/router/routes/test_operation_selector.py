"""OperationSelectorRoute: a child per operation, else the default."""

import pytest

from pymc.protocol.messages import Request
from pymc.router.jsonc import ConfigError
from pymc.router.routes.operation_selector import OperationSelectorRoute

from ..recording import build as meta, delete, get, route, set_

SELECTOR = {"type": "OperationSelectorRoute",
            "operation_policies": {"get": "Rec|reads", "set": "Rec|writes",
                                   "delete": "Rec|writes"},
            "default_policy": "Rec|other"}


@pytest.mark.parametrize("req, child", [
    (get(), "reads"), (set_(), "writes"), (delete(), "writes"),
    (Request(b"gets", [b"k"]), "other"), (Request(b"incr", [b"k"], delta=1), "other"),
    (meta(b"mg", b"k", b"v"), "reads"), (meta(b"ms", b"k", data=b"v"), "writes"),
    (meta(b"ms", b"k", b"MA", data=b"v"), "other"), (meta(b"md", b"k"), "writes"),
])
def test_routes_by_operation(kids, build, req, child):
    handle = build(SELECTOR)
    assert isinstance(handle, OperationSelectorRoute)
    assert handle.name == "operation-selector"
    route(handle, req)
    assert [name for name in ("reads", "writes", "other") if kids[name].seen] == [child]
    assert handle.traverse(req) == [kids[child]]


def test_children_are_listed_once(kids, build):
    # Policies in operation-name order (delete, get, set), then the default.
    assert build(SELECTOR).children == [kids["writes"], kids["reads"], kids["other"]]


def test_unmatched_without_default_is_an_unknown_error(kids, build):
    handle = build({"type": "OperationSelectorRoute",
                    "operation_policies": {"set": "Rec|writes"}})
    reply = route(handle, get())
    assert reply.kind == "unknown" and reply.line() == b"SERVER_ERROR unknown result\r\n"
    assert handle.traverse(get()) == []
    assert kids["writes"].seen == []


def test_default_only_is_the_default(kids, build):
    assert build({"type": "OperationSelectorRoute", "default_policy": "Rec|d"}) is kids["d"]


def test_prefix_policy_route_is_an_alias(kids, build):
    handle = build({"type": "PrefixPolicyRoute", "operation_policies": {"get": "Rec|g"},
                    "default_policy": "Rec|d"})
    assert isinstance(handle, OperationSelectorRoute)


def test_short_form_is_the_child(kids, build):
    assert build("OperationSelectorRoute|Rec|d") is kids["d"]


@pytest.mark.parametrize("json, message", [
    ({"type": "OperationSelectorRoute"}, "needs either 'default_policy' or"),
    ({"type": "OperationSelectorRoute", "operation_policies": ["Rec|a"]}, "not an object"),
    ({"type": "OperationSelectorRoute", "operation_policies": {"fetch": "Rec|a"}},
     "operation_policies: Unknown operation: fetch, valid operations: add, append"),
])
def test_bad_config(kids, build, json, message):
    with pytest.raises(ConfigError, match=message):
        build(json)
