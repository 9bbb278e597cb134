"""The router's ``stats`` replies in mcrouter's names and line formats, so mcrouter exporters
and health checks read them unchanged.

Groups as mcrouter's stats.cpp: (none) basic, ``all``, ``detailed``, ``ods``, ``count``,
``cmd-error``, ``servers`` (one line per backend), ``suspect_servers``, ``external``,
``version``; anything else is ``CLIENT_ERROR bad stats command``.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import deque

import psutil

from ..protocol.stats import format_stats
from .results import ERRORS
from .routes.base import BACKGROUND

#: Operation names counted as cmd_<op>_count (mcrouter's request groups).
OPERATIONS = ("add", "append", "cas", "decr", "delete", "flushall", "gat", "gats", "get",
              "gets", "incr", "metaget", "prepend", "replace", "set", "touch")
_COMMAND_OPS = {b"get": "get", b"gets": "gets", b"gat": "gat", b"gats": "gats",
                b"set": "set", b"add": "add", b"replace": "replace", b"append": "append",
                b"prepend": "prepend", b"cas": "cas", b"delete": "delete", b"incr": "incr",
                b"decr": "decr", b"touch": "touch", b"flush_all": "flushall",
                b"mg": "metaget", b"ms": "set", b"md": "delete", b"ma": "incr",
                b"me": "metaget"}
_GROUPS = {"": "basic", "all": "all", "detailed": "detailed", "ods": "ods", "count": "count",
           "cmd-error": "cmd-error", "servers": "servers", "suspect_servers": "suspect",
           "external": "external"}
BAD_STATS = b"CLIENT_ERROR bad stats command\r\n"
RATE_WINDOW_SECONDS = 240  # mcrouter's MOVING_AVERAGE_WINDOW_SIZE_IN_SECOND
RATE_BIN_SECONDS = 1
#: memcached's own stats groups: the router has no such data, but memcached clients (and their
#: test suites) call them, so they get an empty list instead of mcrouter's error.
MEMCACHED_GROUPS = frozenset(("items", "slabs", "sizes", "settings", "conns", "cachedump",
                              "detail", "extstore"))


class RateWindow:
    """mcrouter's rate stats (``cmd_get``, ``result_tko``: per second over the last 240 s) from
    ever-growing counters. mcrouter samples them every second; here a snapshot is kept when
    they are read (``stats``, a scrape), at most one a second: a rate is the increase since
    the oldest snapshot of the window over the time since it (since start-up while younger)."""

    def __init__(self, totals: dict[str, float], clock=time.monotonic) -> None:
        self.clock = clock
        self.snapshots: deque = deque([(clock(), dict(totals))])

    def rates(self, totals: dict[str, float]) -> dict[str, float]:
        now = self.clock()
        snapshots = self.snapshots
        # drop what is older than the window, keeping the newest such one only when nothing
        # younger is left (then the rate covers the time since the previous read)
        while len(snapshots) > 1 and snapshots[1][0] <= now - RATE_WINDOW_SECONDS:
            snapshots.popleft()
        then, old = snapshots[0]
        elapsed = now - then
        rates = {}
        for name, value in totals.items():
            increase = value - old.get(name, 0)
            rates[name] = max(0.0, increase / elapsed) if elapsed > 0 else 0.0
        if now - snapshots[-1][0] >= RATE_BIN_SECONDS:
            snapshots.append((now, dict(totals)))
        return rates


class RouterStats:
    def __init__(self, server) -> None:
        self.server = server
        #: requests (keys, for multi-gets) by wire command, counted on the hot path
        self.by_command: dict[bytes, int] = {}
        #: single-key ``get`` lines forwarded as they came (the hottest path), not in by_command
        self.single_gets = 0
        self.connections_opened = 0
        self.config_failures = 0
        self.config_last_success = int(time.time())
        self.config_last_attempt = self.config_last_success
        self.configs_from_disk = 1
        self.window = RateWindow({})  # every counter starts at 0

    def count(self, command: bytes, keys: int) -> None:
        self.by_command[command] = self.by_command.get(command, 0) + keys

    @property
    def commands(self) -> dict[str, int]:
        """Counts by mcrouter operation name."""
        counts = dict.fromkeys(OPERATIONS, 0)
        counts["get"] = self.single_gets
        for command, count in self.by_command.items():
            op = _COMMAND_OPS.get(command)
            if op is not None:
                counts[op] += count
        return counts

    def rates(self) -> dict[str, float]:
        """Per-second rates of ``cmd_<op>`` and ``result_<reply>[_all]`` (mcrouter's window)."""
        totals: dict[str, float] = {"cmd_" + op: n for op, n in self.commands.items()}
        totals.update(self.result_counts(suffix=""))
        return self.window.rates(totals)

    # -- replies --------------------------------------------------------------------------------

    def reply(self, args) -> bytes:
        group_name = args[0].decode("latin-1") if args else ""
        if group_name == "version":
            return format_stats([("mcrouter-version", self.server.version)])
        group = _GROUPS.get(group_name)
        if group is None:
            if group_name == "reset":
                return b"RESET\r\n"
            return b"END\r\n" if group_name in MEMCACHED_GROUPS else BAD_STATS
        if group == "servers":
            pairs = self.server_lines()
        elif group == "suspect":
            pairs = self.suspect_lines()
        elif group in ("external", "cmd-error"):
            pairs = []
        elif group == "count":
            pairs = self.command_counts() + self.result_counts(suffix="_count")
        else:
            pairs = self.general(detailed=group in ("all", "detailed", "ods"))
            if group in ("all", "ods"):  # mcrouter's count_stats are in these groups too
                pairs += self.result_counts(suffix="_count")
        return format_stats(pairs)

    def general(self, detailed: bool) -> list[tuple[str, object]]:
        server = self.server
        now = time.time()
        destinations = list(server.config.pools.destinations.values())
        states = {"new": 0, "up": 0, "down": 0, "closed": 0}
        for destination in destinations:
            states[_state(destination)] += 1
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        pairs: list[tuple[str, object]] = [
            ("version", server.version), ("commandargs", " ".join(sys.argv[1:])),
            ("pid", os.getpid()), ("parent_pid", os.getppid()), ("time", int(now)),
            ("uptime", int(now - server.started)),
            ("num_servers", len(destinations)),
            ("num_servers_new", states["new"]), ("num_servers_up", states["up"]),
            ("num_servers_down", states["down"]), ("num_servers_closed", states["closed"]),
            ("num_suspect_servers", len(server.config.pools.trackers.suspects())),
        ]
        soft, hard = self.tko_counts()
        pairs += [("num_soft_tko_count", soft), ("num_hard_tko_count", hard)]
        if detailed:
            pairs += [("num_client_connections", len(server.connections)),
                      ("num_connections_opened", self.connections_opened)]
        pairs += [
            ("ps_rss", _rss()), ("rusage_user", round(cpu.ru_utime, 6)),
            ("rusage_system", round(cpu.ru_stime, 6)), ("num_proxies", 1),
            ("proxy_reqs_processing", sum(len(c.slots) for c in server.connections.values())),
            ("proxy_reqs_waiting", 0),
            ("dev_null_requests", _dev_null_requests()),
            ("async_requests_inflight", BACKGROUND.inflight),
            ("async_requests_dropped", BACKGROUND.dropped),
            ("destination_pending_reqs", sum(d.pending for d in destinations)),
            ("destination_inflight_reqs", sum(d.pending for d in destinations)),
            ("duration_us", round(_avg_latency_us(destinations), 3)),
        ]
        if detailed:
            rates = self.rates()
            pairs += [(name, _rate(rate)) for name, rate in rates.items()
                      if name.startswith("result_")]
            pairs += [("config_age", int(now - server.config.loaded_at)),
                      ("config_last_attempt", self.config_last_attempt),
                      ("config_last_success", self.config_last_success),
                      ("config_failures", self.config_failures),
                      ("configs_from_disk", self.configs_from_disk)]
        pairs += self.command_counts()
        if detailed:
            pairs += [(name, _rate(rates[name])) for name in sorted(rates)
                      if name.startswith("cmd_")]
        return pairs

    def command_counts(self) -> list[tuple[str, object]]:
        return [(f"cmd_{op}_count", count) for op, count in sorted(self.commands.items())]

    def result_counts(self, suffix: str) -> list[tuple[str, object]]:
        totals: dict[str, int] = {}
        for destination in self.server.config.pools.destinations.values():
            for kind, count in destination.stats.results.items():
                totals[kind] = totals.get(kind, 0) + count
        errors = sum(count for kind, count in totals.items() if kind in ERRORS)
        names = [("error", errors), ("connect_error", totals.get("connect_error", 0)),
                 ("connect_timeout", totals.get("connect_timeout", 0)),
                 ("data_timeout", totals.get("timeout", 0)), ("busy", totals.get("busy", 0)),
                 ("tko", totals.get("tko", 0)),
                 ("client_error", totals.get("client_error", 0)),
                 ("local_error", totals.get("local_error", 0)),
                 ("remote_error", totals.get("remote_error", 0))]
        pairs: list[tuple[str, object]] = []
        for name, count in names:
            pairs += [(f"result_{name}{suffix}", count), (f"result_{name}_all{suffix}", count)]
        return pairs

    def server_lines(self) -> list[tuple[str, object]]:
        pairs = []
        for (ap, timeout, _), destination in self.server.config.pools.destinations.items():
            key = server_key(ap, timeout)
            stats = destination.stats
            text = (f"avg_latency_us:{stats.avg_latency_us:.3f} "
                    f"pending_reqs:{destination.pending} inflight_reqs:{destination.pending}")
            if destination.tko.is_hard:
                text += " hard_tko; "
            elif destination.tko.is_soft:
                text += " soft_tko; "
            text += f" {_state(destination)}:1"
            first = True
            for kind in sorted(stats.results):
                text += f"{'; ' if first else ' '}{kind}:{stats.results[kind]}"
                first = False
            pairs.append((key, text))
        return pairs

    def suspect_lines(self) -> list[tuple[str, object]]:
        """mcrouter's ``stats suspect_servers``: servers with failures since their last good
        reply, TKO or not yet."""
        return [(tracker.key, f"status:{'tko' if tracker.is_tko else 'down'} "
                              f"num_failures:{tracker.consecutive_failures}")
                for tracker in self.server.config.pools.trackers.suspects()]

    def tko_counts(self) -> tuple[int, int]:
        """(soft, hard) TKO servers."""
        trackers = self.server.config.pools.trackers.by_key.values()
        return (sum(t.is_soft for t in trackers), sum(t.is_hard for t in trackers))


def server_key(ap, timeout) -> str:
    """A destination as ``stats servers`` names it (``10.0.0.1:11211:ascii:plain:...``)."""
    return (f"{ap}:{ap.protocol}:{ap.security}:"
            f"{'compressed' if ap.compressed else 'notcompressed'}-{timeout}")


def _state(destination) -> str:
    """mcrouter's destination states: a TKO server is down whatever its socket does."""
    if destination.tko.is_tko:
        return "down"
    return {"new": "new", "connecting": "new", "up": "up", "closed": "closed"}.get(
        destination.state, "down")


def _rss() -> int:
    """Resident bytes, or 0 when /proc cannot be read (out of file descriptors: stats must
    still answer then)."""
    try:
        return psutil.Process().memory_info().rss
    except (OSError, psutil.Error):
        return 0


def _avg_latency_us(destinations) -> float:
    total = sum(d.stats.latency_total for d in destinations)
    count = sum(d.stats.latency_count for d in destinations)
    return total / count * 1e6 if count else 0.0


def _dev_null_requests() -> int:
    from .routes.dev_null import DevNullRoute
    return DevNullRoute.dev_null_requests




def _rate(value: float) -> str:
    """A rate as mcrouter prints one (printf %g)."""
    return "%g" % value
