"""Pools: the config's ``pools`` section, inline pools, ``inherit``, and the destinations they
become. One Destination per (server, timeouts) is shared by every pool and route naming it, as
mcrouter shares its ProxyDestinations. A reloaded config is built with the previous one's
destinations (``Pools(..., previous=old)``), so servers that stay keep their connections and
TKO state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .access_point import AccessPoint, parse_access_point
from .destination import Destination, DestinationPolicy
from .jsonc import ConfigError
from .tko import TkoTrackers

logger = logging.getLogger(__name__)


@dataclass
class Pool:
    name: str
    json: dict
    routes: list = field(default_factory=list)  # DestinationRoute per server, in order
    weights: list | None = None


class Pools:
    def __init__(self, pools_json: dict | None, options, loop=None,
                 previous: "Pools | None" = None) -> None:
        if pools_json is not None and not isinstance(pools_json, dict):
            raise ConfigError("config: 'pools' is not an object")
        self._json: dict[str, dict] = dict(pools_json or {})
        self._state: dict[str, str] = {}
        self.options = options
        self.loop = loop
        self.built: dict[str, Pool] = {}
        self.destinations: dict[tuple, Destination] = {}
        self.previous = previous.destinations if previous is not None else {}
        if previous is not None:
            self.trackers = previous.trackers
        else:
            clock = loop.now if loop is not None else _no_clock
            self.trackers = TkoTrackers(options.timeouts_until_tko, clock)
        self.policy = DestinationPolicy(
            probe_initial_ms=options.probe_timeout_initial_ms,
            probe_max_ms=options.probe_timeout_max_ms,
            tko_enabled=not options.disable_tko_tracking,
            max_pending=options.target_max_pending_requests)

    # -- JSON -----------------------------------------------------------------------------------

    def parse(self, json) -> tuple[str, dict]:
        """A pool reference (name, or an inline object with ``name``) → (name, pool JSON)."""
        if isinstance(json, str):
            return json, self._named(json)
        if not isinstance(json, dict):
            raise ConfigError("Pool should be a string (name of pool) or an object")
        name = json.get("name")
        if not isinstance(name, str):
            raise ConfigError("Pool should have string 'name'")
        self._json.setdefault(name, json)
        return name, self._named(name)

    def _named(self, name: str) -> dict:
        if name not in self._json:
            raise ConfigError(f"Can not read pool: {name}")
        state = self._state.get(name)
        if state == "parsing":
            chain = [n for n, s in self._state.items() if s == "parsing"]  # in order
            chain = chain[chain.index(name):] + [name]
            raise ConfigError(f"Cycle in pool inheritance: {' -> '.join(chain)}")
        json = self._json[name]
        if state is None and isinstance(json, dict) and "inherit" in json:
            self._state[name] = "parsing"
            parent = json["inherit"]
            if not isinstance(parent, str):
                raise ConfigError(f"Pool {name}: inherit is not a string")
            merged = dict(self._named(parent))
            merged.update({k: v for k, v in json.items() if k != "inherit"})
            self._json[name] = json = merged
        self._state[name] = "parsed"
        if not isinstance(json, dict):
            raise ConfigError(f"Pool {name}: pool is not an object")
        return json

    # -- destinations ---------------------------------------------------------------------------

    def build(self, factory, json) -> Pool:
        """The pool ``json`` refers to, built on first use. Errors are ConfigErrors without a
        path, ``Pool A: ...``, with a path inside the pool where there is one (``Pool A:
        servers[0]: ...``): the factory adds where the pool was referred to. A pool whose
        servers route back to it is a cycle (``Pool A references itself: A -> A``)."""
        name, pool_json = self.parse(json)
        if name in self.built:
            return self.built[name]
        with factory.building("Pool", name):
            return self._build(factory, name, pool_json)

    def _build(self, factory, name: str, pool_json: dict) -> Pool:
        from .routes.destination import DestinationRoute
        try:
            servers = pool_json.get("servers")
            if servers is None:
                raise ConfigError("servers not found")
            if not isinstance(servers, list):
                raise ConfigError("servers is not an array")
            timeout = _milliseconds(pool_json, "server_timeout", self.options.server_timeout_ms)
            connect_timeout = _milliseconds(pool_json, "connect_timeout", timeout)
            keep = pool_json.get("keep_routing_prefix", False)
            if not isinstance(keep, bool):
                raise ConfigError("keep_routing_prefix is not a boolean")
            protocol = pool_json.get("protocol", "ascii")
            security = pool_json.get("security_mech", "plain")
            weights = pool_json.get("weights")
            pool = Pool(name, pool_json)
            for index, server in enumerate(servers):
                if isinstance(server, dict):
                    with factory.relative():  # paths inside the pool: servers[0]...
                        pool.routes.append(factory.create(server, f"servers[{index}]"))
                    continue
                if not isinstance(server, str):
                    raise ConfigError(f"server #{index} is not a string/object")
                ap = parse_access_point(server, protocol, security)
                if ap.protocol != "ascii":
                    raise ConfigError(f"server {server}: only the ascii protocol is supported")
                if ap.security != "plain" and not ap.unix:
                    logger.warning("pool %s: server %s asks for %s; pymc-router has no TLS "
                                   "and connects in plain text", name, server, ap.security)
                destination = self.destination(ap, timeout, connect_timeout)
                pool.routes.append(DestinationRoute(destination, name, index, keep, timeout))
            if isinstance(weights, list) and len(weights) != len(servers):
                raise ConfigError(f"weights has {len(weights)} entries for "
                                  f"{len(servers)} servers")
            # as given: WeightedCh3 (routes/hash.py) checks each weight, as mcrouter's does
            pool.weights = weights
        except ConfigError as exc:
            raise ConfigError(f"Pool {name}: {exc}") from None
        self.built[name] = pool
        return pool

    def destination(self, ap: AccessPoint, timeout_ms: int, connect_timeout_ms: int) -> Destination:
        key = (ap, timeout_ms, connect_timeout_ms)
        destination = self.destinations.get(key)
        if destination is None:
            destination = self.previous.get(key)
            if destination is None:
                destination = Destination(ap, self.loop, timeout_ms, connect_timeout_ms,
                                          self.trackers.get(str(ap)), self.policy)
            else:
                destination.set_policy(self.policy)
            self.destinations[key] = destination
        return destination

    def discard_new(self) -> None:
        """A config that failed to build: drop the destinations it made (never connected)."""
        for key, destination in self.destinations.items():
            if self.previous.get(key) is not destination:
                destination.close()
        self.destinations = {}

    def retire_unused(self) -> int:
        """Retire the previous config's destinations this one no longer names (after the
        swap: they close once their requests in flight are answered); returns how many."""
        gone = [d for key, d in self.previous.items() if key not in self.destinations]
        for destination in gone:
            destination.retire()
        self.previous = {}
        return len(gone)


def _no_clock() -> float:
    return 0.0


#: Longest timeout taken, in ms (49 days): beyond it a value is a typo, and a huge one would
#: not even convert to the event loop's float seconds.
MAX_TIMEOUT_MS = 2**32 - 1


def _milliseconds(json: dict, key: str, default: int) -> int:
    value = json.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0 <= value <= MAX_TIMEOUT_MS:
        raise ConfigError(f"{key} is not a valid timeout")
    return int(value)
