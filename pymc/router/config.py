"""Load an mcrouter config: text → JSON (comments, trailing commas) → macros expanded → pools,
named handles and route trees → a RootRoute for the proxy.

``--config`` is ``file:PATH`` or the JSON itself; ``--config-file PATH`` also works. Errors are
ConfigError naming the JSON path; the caller refuses to start (or, on reload, keeps the old
config).
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import os
import time
from dataclasses import dataclass, field

from .factory import RouteFactory
from .jsonc import ConfigError, loads
from .keys import normalize_prefix
from .macros import preprocess
from .options import RouterOptions
from .pools import Pools
from .root import RootRoute, RouteMap
from .routes.base import RouteHandle

FILE_PREFIX = "file:"


@dataclass
class RouterConfig:
    root: RootRoute
    routes: dict[str, RouteHandle]
    pools: Pools
    text: str
    md5: str
    preprocessed: dict
    path: str = ""
    loaded_at: float = field(default_factory=time.time)
    #: files read through @import (absolute paths), watched for reloads with ``path``
    imports: list[str] = field(default_factory=list)


def config_source(options: RouterOptions) -> tuple[str, str]:
    """(text, path) of the configured config; path is "" for an inline JSON string."""
    source = options.config
    if source.startswith(FILE_PREFIX):
        path = source[len(FILE_PREFIX):]
    elif source:
        return source, ""
    elif options.config_file:
        path = options.config_file
    else:
        raise ConfigError("no config: use --config file:PATH, --config JSON or --config-file")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), path
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None


def load(options: RouterOptions, loop=None, text: str | None = None,
         path: str | None = None, previous: RouterConfig | None = None) -> RouterConfig:
    """Read and build the config; with ``previous`` (a reload) its destinations are reused
    for the servers that remain."""
    if text is None:
        text, path = config_source(options)
    path = path or ""
    raw = loads(text)
    if not isinstance(raw, dict):
        raise ConfigError("Config is not an object")
    base = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    imports: list[str] = []
    expanded = preprocess(raw, global_params(options), _import_resolver(base, imports))
    config = build(expanded, options, loop, text, path,
                   previous.pools if previous is not None else None)
    config.imports = imports
    return config


def global_params(options: RouterOptions) -> dict:
    """What a config's macros can use besides ``--config-params`` (mcrouter's
    buildGlobalParams; a param of the same name does not replace these)."""
    route = normalize_prefix(options.route_prefix)
    parts = route.split("/")
    params: dict = dict(options.config_params)
    params.update({
        "default-route": route, "default-region": parts[1], "default-cluster": parts[2],
        "hostid": options.host_id, "router-name": "unknown", "service-name": "unknown",
        "service-router-capable": 0, "router-info-name": "Memcache", "num-proxies": 1,
    })
    for name, value in options.as_mcrouter_options():
        if value.lstrip("-").isdigit():
            params.setdefault(f"mcr_opts-{name}", int(value))
    return params


def build(config: dict, options: RouterOptions, loop=None, text: str = "",
          path: str = "", previous_pools: Pools | None = None) -> RouterConfig:
    pools = Pools(config.get("pools"), options, loop, previous_pools)
    try:
        factory = RouteFactory(pools, options=options)
        _named_handles(factory, config.get("named_handles"))
        routes = _route_trees(factory, config)
        default = normalize_prefix(options.route_prefix)
        if default not in routes:
            raise ConfigError(f"invalid default route: {default}")
    except BaseException:
        pools.discard_new()
        raise
    root = RootRoute(RouteMap(routes, default, options.send_invalid_route_to_default))
    return RouterConfig(root, routes, pools, text,
                        hashlib.md5(text.encode()).hexdigest(), config, path)


def _named_handles(factory: RouteFactory, named) -> None:
    if named is None:
        return
    with factory.at("named_handles"):
        if isinstance(named, list):
            for index, item in enumerate(named):
                factory.create(item, index)
        elif isinstance(named, dict):
            for name, value in named.items():
                if isinstance(value, dict) and value.get("name", name) != name:
                    raise factory.error(f"Ambiguous RouteHandle name in object for {name}")
                factory.add_named(name, value)
        else:
            raise factory.error(f"named_handles is {type(named).__name__} "
                                "expected array/object")


def _route_trees(factory: RouteFactory, config: dict) -> dict[str, RouteHandle]:
    route, routes = config.get("route"), config.get("routes")
    if route is not None and routes is not None:
        raise ConfigError("Invalid config: both 'route' and 'routes' are specified")
    options = factory.options
    if route is not None:
        return {normalize_prefix(options.route_prefix): factory.create(route, "route")}
    if routes is None:
        raise ConfigError("No route/routes in config")
    trees: dict[str, RouteHandle] = {}
    with factory.at("routes"):
        if isinstance(routes, list):
            for index, policy in enumerate(routes):
                with factory.at(index):
                    factory.check(isinstance(policy, dict), "RoutePolicy is not an object")
                    factory.check("route" in policy, "RoutePolicy: no route")
                    factory.check("aliases" in policy, "RoutePolicy: no aliases")
                    aliases = policy["aliases"]
                    factory.check(isinstance(aliases, list),
                                  "RoutePolicy: aliases is not an array")
                    tree = factory.create(policy["route"], "route")
                    for alias in aliases:
                        factory.check(isinstance(alias, str),
                                      "RoutePolicy: alias is not a string")
                        trees[alias] = tree
        elif isinstance(routes, dict):
            for alias, value in routes.items():
                trees[alias] = factory.create(value, alias)
        else:
            raise factory.error("Config: routes is not array/object")
    return trees


def _import_resolver(base: str, seen: list[str]):
    def resolve(name: str) -> str:
        path = name if os.path.isabs(name) else os.path.join(base, name)
        if path not in seen:
            seen.append(path)
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError as exc:
            raise ConfigError(f"@import: cannot read {path}: {exc.strerror}") from None
    return resolve


def pretty(value) -> str:
    """mcrouter's toPrettySortedJson."""
    return jsonlib.dumps(value, indent=2, sort_keys=True)
