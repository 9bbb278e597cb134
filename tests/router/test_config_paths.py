"""Config errors name the JSON path once, and cycles (pools routing to themselves, named
handles naming themselves) are ConfigErrors naming the cycle, never a RecursionError."""

import pytest

from pymc.router.config import build
from pymc.router.factory import RouteFactory
from pymc.router.jsonc import ConfigError
from pymc.router.options import RouterOptions
from pymc.router.routes.base import REGISTRY


def error_of(config) -> str:
    with pytest.raises(ConfigError) as info:
        build(config, RouterOptions())
    return str(info.value)


# -- an error raised inside factory.at(step) without a path gets the path with the step -------

def test_at_gives_a_pathless_error_the_path_including_the_step():
    factory = RouteFactory()
    with pytest.raises(ConfigError) as info:
        with factory.at("route"):
            with factory.at("children"):
                with factory.at(2):
                    raise ConfigError("no path here")
    assert str(info.value) == "route.children[2]: no path here"
    assert factory.path == "(top)"  # the steps are gone again


def test_at_keeps_an_error_that_has_a_path():
    factory = RouteFactory()
    with pytest.raises(ConfigError) as info:
        with factory.at("route"):
            with factory.at("pool"):
                raise factory.error("inner")
    assert str(info.value) == "route.pool: inner"


@pytest.mark.parametrize("pool, message", [
    ({"servers": []}, "route.pool: Pool should have string 'name'"),
    (5, "route.pool: Pool should be a string (name of pool) or an object"),
    ("nope", "route.pool: Can not read pool: nope"),
    ({"name": "P"}, "route.pool: Pool P: servers not found"),
    ({"name": "P", "servers": ["127.0.0.1:1"], "server_timeout": -1},
     "route.pool: Pool P: server_timeout is not a valid timeout"),
])
def test_pool_route_errors_name_the_pool_step(pool, message):
    assert error_of({"route": {"type": "PoolRoute", "pool": pool}}) == message


def test_short_form_pool_errors_name_the_type_step():
    assert error_of({"route": "PoolRoute|nope"}) == "route.PoolRoute: Can not read pool: nope"
    assert error_of({"route": "Pool|nope"}) == "route.Pool: Can not read pool: nope"


def test_other_steps_keep_their_paths():
    config = {"route": {"type": "FailoverRoute", "children": ["NullRoute"],
                        "failover_errors": {"gets": ["nonsense"]}}}
    assert error_of(config) == ("route.failover_errors.gets: Failover error 'nonsense' is "
                                "not a valid error type.")
    config = {"routes": [{"aliases": ["/a/b/"], "route": {"type": "PoolRoute", "pool": 7}}]}
    assert error_of(config) == \
        "routes[0].route.pool: Pool should be a string (name of pool) or an object"


# -- errors inside a pool's servers: the path once, then the pool, then the path inside it ------

BAD_SERVER = {"A": {"servers": [{"type": "Nope"}]}}


def test_error_in_a_pool_server_names_each_path_once():
    assert error_of({"pools": BAD_SERVER, "route": "PoolRoute|A"}) == \
        "route.PoolRoute: Pool A: servers[0]: Unknown RouteHandle: Nope"
    assert error_of({"pools": BAD_SERVER, "route": {"type": "PoolRoute", "pool": "A"}}) == \
        "route.pool: Pool A: servers[0]: Unknown RouteHandle: Nope"


def test_error_in_a_nested_pool_reads_as_a_chain():
    pools = {"A": {"servers": ["127.0.0.1:1", {"type": "FailoverRoute",
                                               "children": ["NullRoute", "PoolRoute|B"]}]},
             "B": {"servers": [{"type": "AllSyncRoute", "children": ["Nope"]}]}}
    assert error_of({"pools": pools, "route": "PoolRoute|A"}) == (
        "route.PoolRoute: Pool A: servers[1].children[1].PoolRoute: "
        "Pool B: servers[0].children[0]: Unknown RouteHandle: Nope")


# -- cycles -----------------------------------------------------------------------------------

def test_pool_whose_server_routes_to_itself():
    pools = {"A": {"servers": [{"type": "PoolRoute", "pool": "A"}]}}
    assert error_of({"pools": pools, "route": "PoolRoute|A"}) == (
        "route.PoolRoute: Pool A: servers[0].pool: Pool A references itself: A -> A")


def test_pool_cycle_through_another_pool():
    pools = {"A": {"servers": [{"type": "PoolRoute", "pool": "B"}]},
             "B": {"servers": ["127.0.0.1:1", {"type": "AllSyncRoute",
                                               "children": "Pool|A"}]}}
    assert error_of({"pools": pools, "route": {"type": "PoolRoute", "pool": "A"}}) == (
        "route.pool: Pool A: servers[0].pool: Pool B: servers[1].children.Pool: "
        "Pool A references itself: A -> B -> A")


def test_a_pool_referred_to_twice_is_no_cycle():
    pools = {"A": {"servers": [{"type": "PoolRoute", "pool": "B"},
                               {"type": "AllSyncRoute", "children": ["PoolRoute|B", "Pool|B"]}]},
             "B": {"servers": ["127.0.0.1:1", "127.0.0.1:2"]}}
    config = build({"pools": pools, "route": {"type": "AllSyncRoute",
                                              "children": ["PoolRoute|A", "Pool|A"]}},
                   RouterOptions())
    assert set(config.pools.built) == {"A", "B"}
    assert len(config.pools.destinations) == 2


def test_pool_inheritance_cycle_names_the_cycle():
    pools = {"A": {"inherit": "B", "servers": ["127.0.0.1:1"]}, "B": {"inherit": "A"}}
    assert error_of({"pools": pools, "route": "PoolRoute|A"}) == \
        "route.PoolRoute: Cycle in pool inheritance: A -> B -> A"


@pytest.mark.parametrize("config, message", [
    ({"named_handles": [{"name": "x", "type": "FailoverRoute", "children": ["x"]}],
      "route": "x"},
     "named_handles[0].children[0]: RouteHandle x references itself: x -> x"),
    ({"named_handles": {"x": {"type": "FailoverRoute", "children": ["NullRoute", "x"]}},
      "route": "x"},
     "route.children[1]: RouteHandle x references itself: x -> x"),
    ({"named_handles": {"x": ["NullRoute", "x"]}, "route": "AllSyncRoute|x"},
     "route.AllSyncRoute[1]: RouteHandle x references itself: x -> x"),
    ({"named_handles": {"x": {"type": "FailoverRoute", "children": ["y"]},
                        "y": {"type": "AllSyncRoute", "children": ["NullRoute", "x"]}},
      "route": "x"},
     "route.children[0].children[1]: RouteHandle x references itself: x -> y -> x"),
    ({"route": {"name": "x", "type": "FailoverRoute",
                "children": [{"type": "AllSyncRoute", "children": "x"}]}},
     "route.children[0].children: RouteHandle x references itself: x -> x"),
])
def test_named_handle_referring_to_itself(config, message):
    assert error_of(config) == message


def test_cycle_through_a_named_handle_and_a_pool():
    config = {"pools": {"A": {"servers": [{"type": "FailoverRoute", "children": ["x"]}]}},
              "named_handles": {"x": "PoolRoute|A"}, "route": "x"}
    assert error_of(config) == ("route.PoolRoute: Pool A: servers[0].children[0]: "
                                "RouteHandle x references itself: x -> Pool A -> x")
    config = {"pools": {"A": {"servers": [{"type": "FailoverRoute", "children": ["x"]}]}},
              "named_handles": {"x": {"type": "PoolRoute", "pool": "A"}}, "route": "Pool|A"}
    assert error_of(config) == ("route.Pool: Pool A: servers[0].children[0].pool: "
                                "Pool A references itself: A -> RouteHandle x -> A")


def test_named_handles_used_twice_and_same_name_objects_are_no_cycle():
    config = build({"named_handles": {"x": "NullRoute"},
                    "route": {"type": "AllSyncRoute", "children": ["x", "x"]}},
                   RouterOptions())
    tree = config.routes["/././"]
    assert tree.children[0] is tree.children[1]
    # an object named "x" inside "x" is built anew (mcrouter's createNamed): no reference
    build({"route": {"name": "x", "type": "FailoverRoute",
                     "children": ["NullRoute", {"name": "x", "type": "NullRoute"}]}},
          RouterOptions())


def test_a_name_that_is_also_a_type_resolves_to_the_type():
    # mcrouter: a string neither seen nor registered is a type, even inside a handle of that
    # name, so this is not a cycle.
    assert "NullRoute" in REGISTRY
    config = build({"named_handles": {"NullRoute": {"type": "FailoverRoute",
                                                    "children": ["NullRoute", "NullRoute"]}},
                    "route": "NullRoute"}, RouterOptions())
    assert config.routes["/././"].name.startswith("failover")
