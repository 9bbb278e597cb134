"""Config loading: route/routes forms, named handles, pools, macros, errors with JSON paths,
and the pymc-router command line."""

import json

import pytest

from pymc.router.cli import build_parser, options_from
from pymc.router.config import build, load
from pymc.router.jsonc import ConfigError
from pymc.router.options import RouterOptions
from pymc.router.routes.destination import DestinationRoute


def options(**kw) -> RouterOptions:
    return RouterOptions(**kw)


POOLS = {"A": {"servers": ["127.0.0.1:11211", "127.0.0.1:11212"]},
         "B": {"servers": ["[::1]:11213"], "server_timeout": 50, "keep_routing_prefix": True}}


def test_route_binds_default_prefix():
    config = build({"pools": POOLS, "route": "PoolRoute|A"}, options(route_prefix="eqiad/mw"))
    assert list(config.routes) == ["/eqiad/mw/"]


def test_routes_as_list_and_object():
    config = build({"pools": POOLS, "routes": [
        {"aliases": ["/a/a/", "/a/b/"], "route": "PoolRoute|A"},
        {"aliases": ["/b/b/"], "route": "PoolRoute|B"}]}, options(route_prefix="/a/a/"))
    assert config.routes["/a/a/"] is config.routes["/a/b/"]
    config = build({"pools": POOLS, "routes": {"/a/a/": "PoolRoute|A", "/b/b/": "NullRoute"}},
                   options(route_prefix="/a/a/"))
    assert set(config.routes) == {"/a/a/", "/b/b/"}


def test_pools_shared_destinations_and_options():
    config = build({"pools": POOLS, "route": {"type": "AllSyncRoute", "children": [
        "PoolRoute|A", "PoolRoute|B", "Pool|A"]}}, options())
    built = config.pools.built
    assert [str(r.destination) for r in built["A"].routes] == ["127.0.0.1:11211",
                                                               "127.0.0.1:11212"]
    b = built["B"].routes[0]
    assert isinstance(b, DestinationRoute) and b.keep_routing_prefix
    assert b.destination.timeout == 0.05 and str(b.destination) == "[::1]:11213"
    assert len(config.pools.destinations) == 3


def test_named_handles_and_short_forms():
    config = build({"pools": POOLS, "named_handles": [
        {"name": "main", "type": "PoolRoute", "pool": "A"}],
        "route": {"type": "FailoverRoute", "children": ["main", "PoolRoute|B"]}}, options())
    assert config.routes["/././"].name.startswith("failover")
    config = build({"pools": POOLS, "named_handles": {"x": "PoolRoute|A"},
                    "route": "AllSyncRoute|Pool|A"}, options())
    assert config.routes["/././"].name == "all-sync"


def test_inline_pool_and_weights_switch_to_weighted_ch3():
    config = build({"route": {"type": "PoolRoute", "pool": {
        "name": "W", "servers": ["127.0.0.1:1", "127.0.0.1:2"], "weights": [1, 0.5]}}},
        options())
    assert "WeightedCh3" in config.routes["/././"].name


@pytest.mark.parametrize("config,message", [
    ({"route": "PoolRoute|A", "routes": {}}, "both 'route' and 'routes'"),
    ({"pools": POOLS}, "No route/routes in config"),
    ({"route": "NoSuch"}, "Unknown RouteHandle: NoSuch"),
    ({"route": {"type": "AllSyncRoute", "children": ["PoolRoute|nope"]}},
     "route.children[0].PoolRoute: Can not read pool: nope"),
    ({"pools": {"A": {"servers": ["bad"]}}, "route": "PoolRoute|A"}, "Pool A: invalid server"),
    ({"routes": {"/x/y/": "NullRoute"}}, "invalid default route: /././"),
    ({"routes": [{"route": "NullRoute"}]}, "routes[0]: RoutePolicy: no aliases"),
    ({"route": {"type": "FailoverRoute", "children": ["NullRoute"],
                "failover_errors": ["nonsense"]}}, "route"),
    ({"pools": {"A": {"servers": ["127.0.0.1:1"], "server_timeout": 10**30}},
      "route": "PoolRoute|A"}, "Pool A: server_timeout is not a valid timeout"),
    ({"pools": {"A": {"servers": ["127.0.0.1:1", "127.0.0.1:2"], "weights": ["0.5", 1]}},
      "route": "PoolRoute|A"}, "WeightedChHashFunc: weight is not number"),
])
def test_errors_name_the_json_path(config, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("|", r"\|")):
        build(config, options())


def test_load_file_with_comments_macros_and_params(tmp_path):
    (tmp_path / "pools.json").write_text(json.dumps(POOLS))
    text = """// Wikimedia-style
    {
      "macros": {"pool_route": {"type": "macroDef", "params": ["name"],
                                "result": "PoolRoute|%name%"}},
      "pools": "@import(pools.json)",
      "route": "@pool_route(%which%)",  /* from --config-params */
    }"""
    path = tmp_path / "config.json"
    path.write_text(text)
    config = load(options(config=f"file:{path}", config_params={"which": "B"}))
    assert config.path == str(path) and len(config.md5) == 32
    assert config.preprocessed["route"] == "PoolRoute|B"
    assert "macros" not in config.preprocessed


def test_global_params_available_to_macros():
    config = load(options(config=json.dumps({"routes": {
        "%default-route%": "NullRoute"}}), route_prefix="dc1/c1"))
    assert list(config.routes) == ["/dc1/c1/"]


def test_cli_flags():
    args = build_parser().parse_args([
        "-p", "4442", "--config", "file:/etc/mcrouter/config.json", "--route-prefix=eqiad/mw",
        "--cross-region-timeout-ms=300", "--cross-cluster-timeout-ms=100",
        "--send-invalid-route-to-default", "--file-observer-poll-period-ms=1000",
        "--file-observer-sleep-before-update-ms=100", "--num-proxies=12",
        "--probe-timeout-initial=6000", "--timeouts-until-tko=10", "--debug-fifo-root", "/x",
        "--stats-root", "/y", "--config-params", "a:1,b:two", "-t", "250"])
    opts = options_from(args)
    assert (opts.port, opts.route_prefix, opts.timeouts_until_tko) == (4442, "eqiad/mw", 10)
    assert opts.send_invalid_route_to_default and opts.probe_timeout_initial_ms == 6000
    assert opts.config_params == {"a": "1", "b": "two"} and opts.server_timeout_ms == 250


def test_cli_validate_config(tmp_path, capsys):
    from pymc.router.cli import main
    good = tmp_path / "good.json"
    good.write_text('{"route": "NullRoute"}')
    assert main(["--config", f"file:{good}", "--validate-config"]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"route": "Nope"}')
    assert main(["--config", f"file:{bad}", "--validate-config=exit"]) == 1
    assert "Unknown RouteHandle: Nope" in capsys.readouterr().err
    assert main(["--config", '{"route": "NullRoute",}', "--validate-config"]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["--bogus-flag"])
    assert exit_info.value.code == 64


@pytest.mark.parametrize("port", ["70000", "-1", "abc"])
def test_cli_refuses_a_port_out_of_range(port, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["-p", port])
    assert exit_info.value.code == 64
    assert f"Invalid port number: '{port}'" in capsys.readouterr().err


def test_pool_route_shadows_wrap_the_members_in_range():
    config = build({"pools": POOLS, "route": {
        "type": "PoolRoute", "pool": "A",
        "shadows": [{"target": "PoolRoute|B", "index_range": [0, 1],
                     "key_fraction_range": [0, 1]}]}}, options())
    tree = config.routes["/././"]
    assert [child.name.split("|")[0] for child in tree.children] == ["shadow", "host"]
