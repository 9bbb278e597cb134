"""MediaWiki-like cache traffic for the lab: readers and writers per DC over WANCache.

Every DC has its own router(s) in front of its own memcached pools; only purges cross DCs
(``/*/mw-wan/``). ``Traffic`` runs, per DC, ``readers_per_dc`` reader threads and (in the
writer DCs) one writer thread, each with its own ``WANCache`` connection to one of the DC's
routers, against one shared in-process ``Database`` (the source of truth: key → version):

- a reader picks a key (Zipf-like popularity), calls ``get_with_set`` whose callback reads the
  database (the value encodes the key and its version), and checks what it got: a version
  older than the database's at the start of the read is a **stale read**, "within hold-off"
  when the newer version was written at most ``holdoff`` (+ ``stale_grace``, memcached's
  whole-second expiry) seconds before, "beyond hold-off" otherwise — the dangerous kind, a
  purge that never arrived;
- a writer bumps a key's version in the database, then purges it with ``delete()``.

Stats are cumulative and thread-safe (``snapshot()``); an interval is a difference of two
snapshots (``later - earlier``, or ``window(seconds)``).

CLI: ``pymc lab traffic --router eqiad=127.0.0.1:P1,127.0.0.1:P2 --router codfw=...
--duration 30`` prints a progress line every second and a summary table at the end.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import dataclasses
import math
import random
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

from .wancache import HOLDOFF_TTL, WANCache
from .wire import parse_address

# Latency histogram: bucket i holds latencies in [BASE**i, BASE**(i+1)) microseconds.
_BASE = 1.02
_LOG_BASE = math.log(_BASE)
_BUCKETS = int(math.log(1e9) / _LOG_BASE) + 2  # up to 1000 s
#: How long a worker waits after a socket error (refused, reset, timeout) before going on.
SOCKET_ERROR_PAUSE = 0.05


def _bucket(seconds: float) -> int:
    micros = seconds * 1e6
    if micros < 1.0:
        return 0
    return min(_BUCKETS - 1, int(math.log(micros) / _LOG_BASE))


def _percentile(histogram: list, fraction: float) -> Optional[float]:
    """The latency in seconds under which ``fraction`` of the samples fall (bucket midpoint)."""
    total = sum(histogram)
    if not total:
        return None
    rank = max(1, math.ceil(total * fraction))
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return (_BASE ** index) * math.sqrt(_BASE) / 1e6
    return None


# ---------------------------------------------------------------------------- database


class Database:
    """The source of truth: key → version (0 until first written) and when each version was
    written. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._written: dict[str, list] = {}  # key → [time of version 1, time of version 2, ...]

    def read(self, key: str) -> tuple[int, float]:
        """(version, updated_at)."""
        with self._lock:
            version = self._versions.get(key, 0)
            return version, self._written[key][-1] if version else self.started

    def version(self, key: str) -> int:
        return self._versions.get(key, 0)  # a dict read is atomic

    def bump(self, key: str) -> int:
        with self._lock:
            version = self._versions.get(key, 0) + 1
            self._versions[key] = version
            self._written.setdefault(key, []).append(self.clock())
            return version

    def superseded_at(self, key: str, version: int) -> Optional[float]:
        """When the version after ``version`` was written (None if ``version`` is current)."""
        with self._lock:
            written = self._written.get(key, ())
            return written[version] if 0 <= version < len(written) else None

    @property
    def writes(self) -> int:
        with self._lock:
            return sum(self._versions.values())


def encode_value(key: str, version: int, updated_at: float, size: int = 0) -> str:
    head = f"{key}#{version}#{updated_at:.6f}#"
    return head + "x" * max(0, size - len(head))


def decode_value(value) -> Optional[tuple[str, int]]:
    """(key, version) of a value made by ``encode_value``; None if it is not one."""
    if not isinstance(value, str):
        return None
    parts = value.split("#", 3)
    if len(parts) < 4:
        return None
    try:
        return parts[0], int(parts[1])
    except ValueError:
        return None


class Zipf:
    """Ranks 0..n-1 with P(rank r) ∝ 1/(r+1)**s."""

    def __init__(self, n: int, s: float = 1.0) -> None:
        total, self.cumulative = 0.0, []
        for rank in range(n):
            total += 1.0 / (rank + 1) ** s
            self.cumulative.append(total)
        self.total = total

    def sample(self, rng: random.Random) -> int:
        return min(bisect.bisect_left(self.cumulative, rng.random() * self.total),
                   len(self.cumulative) - 1)


# ---------------------------------------------------------------------------- stats


@dataclass
class DCStats:
    """Counters of one DC (or of all: ``TrafficStats.total``)."""

    reads: int = 0
    hits: int = 0           # a value served from the cache, the callback did not run
    regenerations: int = 0  # the callback ran
    busy: int = 0           # the busy value was served (lock held elsewhere)
    stored: int = 0         # regenerated values written (value or interim key)
    purges: int = 0         # writes: database bump + delete()
    purge_failures: int = 0
    stale_within: int = 0   # stale reads within the hold-off (expected)
    stale_beyond: int = 0   # stale reads beyond the hold-off (a purge that never arrived)
    max_stale_age: float = 0.0
    wrong_values: int = 0   # a value for another key, undecodable, or newer than the database
    reads_with_errors: int = 0  # reads that met at least one error (``errors`` counts each)
    errors: collections.Counter = field(default_factory=collections.Counter)
    latency: list = field(default_factory=lambda: [0] * _BUCKETS)  # reads

    def copy(self) -> "DCStats":
        return dataclasses.replace(self, errors=collections.Counter(self.errors),
                                   latency=list(self.latency))

    def add(self, other: "DCStats", sign: int = 1) -> None:
        for name in ("reads", "hits", "regenerations", "busy", "stored", "purges",
                     "purge_failures", "stale_within", "stale_beyond", "wrong_values",
                     "reads_with_errors"):
            setattr(self, name, getattr(self, name) + sign * getattr(other, name))
        if sign > 0:
            self.max_stale_age = max(self.max_stale_age, other.max_stale_age)
            self.errors.update(other.errors)
        else:
            self.errors.subtract(other.errors)
            self.errors = collections.Counter({k: v for k, v in self.errors.items() if v > 0})
        self.latency = [a + sign * b for a, b in zip(self.latency, other.latency)]

    @property
    def ops(self) -> int:
        return self.reads + self.purges

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def stale_reads(self) -> int:
        return self.stale_within + self.stale_beyond

    @property
    def hit_rate(self) -> Optional[float]:
        return self.hits / self.reads if self.reads else None

    @property
    def p50(self) -> Optional[float]:
        return _percentile(self.latency, 0.50)

    @property
    def p99(self) -> Optional[float]:
        return _percentile(self.latency, 0.99)

    def as_dict(self, elapsed: float) -> dict:
        per_sec = (lambda n: n / elapsed) if elapsed > 0 else (lambda n: 0.0)
        p50, p99 = self.p50, self.p99
        return {
            "ops": self.ops, "reads": self.reads, "purges": self.purges,
            "hits": self.hits, "regenerations": self.regenerations, "busy": self.busy,
            "stored": self.stored, "hit_rate": self.hit_rate,
            "errors": self.error_count, "errors_by_kind": dict(self.errors),
            "reads_with_errors": self.reads_with_errors,
            "purge_failures": self.purge_failures,
            "p50_ms": None if p50 is None else p50 * 1e3,
            "p99_ms": None if p99 is None else p99 * 1e3,
            "stale_reads": self.stale_reads, "stale_within_holdoff": self.stale_within,
            "stale_beyond_holdoff": self.stale_beyond, "max_stale_age": self.max_stale_age,
            "wrong_values": self.wrong_values,
            "ops_per_sec": per_sec(self.ops), "reads_per_sec": per_sec(self.reads),
            "stale_reads_per_sec": per_sec(self.stale_reads),
            "stale_beyond_per_sec": per_sec(self.stale_beyond),
        }


@dataclass
class TrafficStats:
    """Stats of every DC over ``elapsed`` seconds; ``later - earlier`` is an interval."""

    elapsed: float
    per_dc: dict
    holdoff: float = HOLDOFF_TTL

    @property
    def total(self) -> DCStats:
        total = DCStats()
        for stats in self.per_dc.values():
            total.add(stats)
        return total

    def __sub__(self, other: "TrafficStats") -> "TrafficStats":
        per_dc = {}
        for dc, stats in self.per_dc.items():
            diff = stats.copy()
            if dc in other.per_dc:
                diff.add(other.per_dc[dc], -1)
            per_dc[dc] = diff
        return TrafficStats(self.elapsed - other.elapsed, per_dc, self.holdoff)

    def as_dict(self) -> dict:
        return {"elapsed": self.elapsed, "holdoff": self.holdoff,
                "total": self.total.as_dict(self.elapsed),
                "per_dc": {dc: s.as_dict(self.elapsed) for dc, s in self.per_dc.items()}}

    def progress_line(self) -> str:
        """One line of rates over ``elapsed`` (pass an interval for "the last second"), then
        hit rate, errors and stale reads beyond the hold-off per DC."""
        rate = (lambda n: n / self.elapsed) if self.elapsed > 0 else (lambda n: 0.0)
        total = self.total
        line = (f"reads {rate(total.reads):.0f}/s hit {_pct(total.hit_rate)} "
                f"err {total.error_count} p50 {_ms(total.p50)} p99 {_ms(total.p99)} "
                f"purges {rate(total.purges):.1f}/s stale {rate(total.stale_reads):.1f}/s "
                f"(beyond hold-off {rate(total.stale_beyond):.1f}/s)")
        for dc, stats in self.per_dc.items():
            line += (f" | {dc} hit {_pct(stats.hit_rate)} err {stats.error_count} "
                     f"beyond {stats.stale_beyond}")
        return line

    def summary_table(self) -> str:
        rows = [("", "reads", "reads/s", "hit rate", "errors", "p50", "p99", "purges",
                 "stale/s", "within", "beyond", "beyond/s")]
        items = list(self.per_dc.items()) + [("total", self.total)]
        for name, stats in items:
            data = stats.as_dict(self.elapsed)
            rows.append((name, str(stats.reads), f"{data['reads_per_sec']:.0f}",
                         _pct(stats.hit_rate),
                         str(stats.error_count), _ms(stats.p50), _ms(stats.p99),
                         str(stats.purges), f"{data['stale_reads_per_sec']:.2f}",
                         str(stats.stale_within), str(stats.stale_beyond),
                         f"{data['stale_beyond_per_sec']:.2f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
        errors = self.total.errors
        if errors:
            lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in errors.most_common()))
        lines.append(f"{self.elapsed:.1f} s; stale = older than the database; within = at "
                     f"most the {self.holdoff:g} s hold-off after the newer version")
        return "\n".join(lines)


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}ms"


def _pct(fraction: Optional[float]) -> str:
    return "-" if fraction is None else f"{fraction * 100:.1f}%"


# ---------------------------------------------------------------------------- traffic


class _Worker:
    def __init__(self, dc: str, stats: DCStats) -> None:
        self.dc = dc
        self.stats = stats
        self.lock = threading.Lock()


class Traffic:
    """Readers and writers per DC. ``routers``: DC name → its routers' ``host:port``s.

    ``writes_per_sec`` is the total purge rate, split over the ``writer_dcs`` (default: every
    DC; MediaWiki writes in the primary DC only, e.g. ``writer_dcs=["eqiad"]``).
    ``reads_per_sec``: per DC, None for as fast as the readers go. ``holdoff`` is the WANCache
    hold-off (11 s like MediaWiki; scale it down for short scenarios). ``wancache`` are extra
    ``WANCache`` keyword arguments (``interim_ttl``, ``lock_ttl``, ``purge_prefix``, ...)."""

    def __init__(self, routers: dict, keys: int = 1000, readers_per_dc: int = 2,
                 writes_per_sec: float = 5.0, seed: Optional[int] = None,
                 holdoff: float = HOLDOFF_TTL, ttl: float = 300.0, *,
                 reads_per_sec: Optional[float] = None, writer_dcs=None,
                 zipf_s: float = 1.0, value_size: int = 100, stale_grace: float = 1.0,
                 timeout: float = 1.0, key_prefix: Optional[str] = None,
                 wancache: Optional[dict] = None) -> None:
        if not routers or any(not addresses for addresses in routers.values()):
            raise ValueError("every DC needs at least one router address")
        self.routers = {dc: list(addresses) for dc, addresses in routers.items()}
        self.keys = keys
        self.readers_per_dc = readers_per_dc
        self.writes_per_sec = writes_per_sec
        self.reads_per_sec = reads_per_sec
        self.writer_dcs = list(self.routers) if writer_dcs is None else list(writer_dcs)
        unknown = set(self.writer_dcs) - set(self.routers)
        if unknown:
            raise ValueError(f"writer DCs without routers: {sorted(unknown)}")
        self.holdoff = holdoff
        self.ttl = ttl
        self.value_size = value_size
        self.stale_grace = stale_grace
        self.timeout = timeout
        self.wancache_options = dict(wancache or {})
        self.seed = seed
        self.key_prefix = key_prefix if key_prefix is not None else \
            f"lab:{uuid.uuid4().hex[:8]}:"  # a fresh namespace: values of older runs are unseen
        self.zipf = Zipf(keys, zipf_s)
        self.clock = time.time
        self.db = Database(self.clock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers: list[_Worker] = []
        self._started: Optional[float] = None
        self._stopped: Optional[float] = None

    def key(self, rank: int) -> str:
        return f"{self.key_prefix}{rank}"

    # -------------------------------------------------------------- lifecycle

    def start(self) -> "Traffic":
        if self._started is not None:
            raise RuntimeError("already started")
        self._started = time.monotonic()
        index = 0
        for dc, addresses in self.routers.items():
            for reader in range(self.readers_per_dc):
                self._spawn(dc, addresses[reader % len(addresses)], self._read_loop, index)
                index += 1
            if dc in self.writer_dcs and self.writes_per_sec > 0:
                self._spawn(dc, addresses[0], self._write_loop, index)
                index += 1
        return self

    def _spawn(self, dc, address, loop, index) -> None:
        worker = _Worker(dc, DCStats())
        self._workers.append(worker)
        rng = random.Random(None if self.seed is None else self.seed * 1000 + index)
        options = {"holdoff": self.holdoff, "timeout": self.timeout, **self.wancache_options}
        cache = WANCache(address, clock=self.clock, rng=random.Random(rng.random()), **options)
        thread = threading.Thread(target=self._run, args=(loop, worker, cache, rng),
                                  name=f"traffic-{dc}-{loop.__name__.strip('_')}-{index}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, loop, worker, cache, rng) -> None:
        try:
            loop(worker, cache, rng)
        finally:
            cache.close()

    def stop(self) -> TrafficStats:
        """Stop every thread and return the final stats."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout * 4 + 5)
        if self._stopped is None and self._started is not None:
            self._stopped = time.monotonic()
        return self.snapshot()

    def __enter__(self) -> "Traffic":
        return self.start() if self._started is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._started is not None and not self._stop.is_set()

    def snapshot(self) -> TrafficStats:
        """Cumulative stats since ``start()``."""
        per_dc = {dc: DCStats() for dc in self.routers}
        for worker in self._workers:
            with worker.lock:
                per_dc[worker.dc].add(worker.stats)
        if self._started is None:
            elapsed = 0.0
        else:
            elapsed = (self._stopped or time.monotonic()) - self._started
        return TrafficStats(elapsed, per_dc, self.holdoff)

    def window(self, seconds: float) -> TrafficStats:
        """Stats of the next ``seconds`` (blocks that long)."""
        before = self.snapshot()
        self._stop.wait(seconds)
        return self.snapshot() - before

    # -------------------------------------------------------------- workers

    def _pace(self, rate: Optional[float], next_at: float) -> float:
        if not rate:
            return next_at
        next_at = max(next_at + 1.0 / rate, time.monotonic() - 1.0)  # no catch-up bursts
        delay = next_at - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
        return next_at

    def _read_loop(self, worker: _Worker, cache: WANCache, rng: random.Random) -> None:
        rate = self.reads_per_sec / self.readers_per_dc if self.reads_per_sec else None
        next_at = time.monotonic()
        while not self._stop.is_set():
            key = self.key(self.zipf.sample(rng))
            try:
                failed = self._read_once(worker, cache, key)
            except Exception as exc:  # a bug must show in the stats, not end the thread
                self._count_exception(worker, cache, exc)
                failed = True
            if failed:
                self._stop.wait(SOCKET_ERROR_PAUSE)  # a dead router: do not spin on refusals
            next_at = self._pace(rate, next_at)

    def _read_once(self, worker: _Worker, cache: WANCache, key: str) -> bool:
        """One read, counted; True if it met a socket error."""
        db = self.db

        def from_database(old):
            version, updated_at = db.read(key)
            return encode_value(key, version, updated_at, self.value_size)

        started_at = self.clock()
        current = db.version(key)
        began = time.perf_counter()
        result = cache.get_with_set(key, self.ttl, from_database)
        latency = time.perf_counter() - began
        stale_age = None
        wrong = False
        if result.source != "busy":
            decoded = decode_value(result.value)
            if decoded is None or decoded[0] != key or decoded[1] > db.version(key):
                wrong = True
            elif decoded[1] < current:
                superseded = db.superseded_at(key, decoded[1])
                stale_age = max(0.0, started_at - superseded) if superseded else 0.0
        with worker.lock:
            stats = worker.stats
            stats.reads += 1
            stats.latency[_bucket(latency)] += 1
            if result.hit:
                stats.hits += 1
            elif result.source == "busy":
                stats.busy += 1
            else:
                stats.regenerations += 1
                stats.stored += result.stored
            for kind in result.errors:
                stats.errors[kind] += 1
            stats.reads_with_errors += bool(result.errors)
            if wrong:
                stats.wrong_values += 1
            if stale_age is not None:
                if stale_age <= self.holdoff + self.stale_grace:
                    stats.stale_within += 1
                else:
                    stats.stale_beyond += 1
                stats.max_stale_age = max(stats.max_stale_age, stale_age)
        return any(kind.startswith("socket:") for kind in result.errors)

    @staticmethod
    def _count_exception(worker: _Worker, cache: WANCache, exc: Exception) -> None:
        cache.close()
        with worker.lock:
            worker.stats.errors[f"exception:{type(exc).__name__}"] += 1

    def _write_loop(self, worker: _Worker, cache: WANCache, rng: random.Random) -> None:
        rate = self.writes_per_sec / len(self.writer_dcs)
        next_at = time.monotonic()
        while True:
            next_at = self._pace(rate, next_at)
            if self._stop.is_set():
                return
            key = self.key(self.zipf.sample(rng))
            before = cache.errors.copy()
            self.db.bump(key)
            try:
                ok = cache.delete(key)
            except Exception as exc:
                self._count_exception(worker, cache, exc)
                ok = False
            new_errors = cache.errors - before
            with worker.lock:
                worker.stats.purges += 1
                worker.stats.purge_failures += not ok
                worker.stats.errors.update(new_errors)
            if any(kind.startswith("socket:") for kind in new_errors):
                self._stop.wait(SOCKET_ERROR_PAUSE)


# ---------------------------------------------------------------------------- CLI


def _parse_router(text: str) -> tuple[str, list]:
    dc, sep, addresses = text.partition("=")
    parsed = [a.strip() for a in addresses.split(",") if a.strip()]
    try:
        if not sep or not dc or not parsed:
            raise ValueError
        for address in parsed:
            parse_address(address, any_port=False)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected DC=HOST:PORT[,HOST:PORT...], e.g. eqiad=127.0.0.1:11311, got {text!r}"
        ) from None
    return dc, parsed


def bounded_number(low: float, high: float = math.inf, *, integer: bool = False,
            above_low: bool = False):
    """An argparse type: a finite number from ``low`` (excluded when ``above_low``) to
    ``high``. Bounded, because every key, reader and value byte costs memory or a thread."""
    def convert(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or above_low and value == low or value > high:
            bounds = (f"above {low:.15g}" if above_low else f"from {low:.15g}") + \
                ("" if high == math.inf else f" to {high:.15g}")
            raise argparse.ArgumentTypeError(f"{text!r}: expected a "
                                             f"{'whole ' if integer else ''}number {bounds}")
        return value
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pymc lab traffic",
        description="MediaWiki WANObjectCache-like traffic against each DC's routers: "
                    "getWithSet reads, purges through /*/mw-wan/, stale-read accounting.")
    parser.add_argument("--router", action="append", type=_parse_router, default=[],
                        metavar="DC=HOST:PORT[,HOST:PORT...]",
                        help="a DC and its routers (repeat for each DC)")
    parser.add_argument("--duration", type=bounded_number(0), default=30.0,
                        help="seconds to run (default 30; Ctrl-C stops early)")
    parser.add_argument("--keys", type=bounded_number(1, 1_000_000, integer=True), default=1000,
                        help="distinct keys (default 1000)")
    parser.add_argument("--readers-per-dc", type=bounded_number(0, 256, integer=True), default=2,
                        help="reader threads per DC (default 2)")
    parser.add_argument("--reads-per-sec", type=bounded_number(0, above_low=True), default=None,
                        help="read rate per DC (default: as fast as the readers go)")
    parser.add_argument("--writes-per-sec", type=bounded_number(0), default=5.0,
                        help="purges per second in total (default 5)")
    parser.add_argument("--writer-dc", action="append", default=None, dest="writer_dcs",
                        help="a DC that writes (repeatable; default every DC)")
    parser.add_argument("--holdoff", type=bounded_number(0), default=HOLDOFF_TTL,
                        help="tombstone hold-off seconds (default 11, as MediaWiki)")
    parser.add_argument("--ttl", type=bounded_number(0), default=300.0,
                        help="value TTL (default 300)")
    parser.add_argument("--value-size", type=bounded_number(0, 1 << 20, integer=True), default=100,
                        help="bytes per value (default 100; at most memcached's 1 MB item)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--interval", type=bounded_number(0, above_low=True), default=1.0,
                        help="seconds between progress lines (default 1)")
    parser.add_argument("--json", action="store_true",
                        help="print the final stats as JSON after the table")
    return parser


def main(argv: Optional[list] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.router:
        parser.error("at least one --router DC=HOST:PORT[,...] is needed")
    routers: dict = {}
    for dc, addresses in args.router:
        routers.setdefault(dc, []).extend(addresses)
    try:
        traffic = Traffic(routers, keys=args.keys, readers_per_dc=args.readers_per_dc,
                          writes_per_sec=args.writes_per_sec, seed=args.seed,
                          holdoff=args.holdoff, ttl=args.ttl, reads_per_sec=args.reads_per_sec,
                          writer_dcs=args.writer_dcs, value_size=args.value_size)
    except ValueError as exc:
        parser.error(str(exc))
    restore = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM stops as Ctrl-C does, with a summary
        def on_term(signum, frame):
            raise KeyboardInterrupt
        restore = signal.signal(signal.SIGTERM, on_term)
    out = sys.stdout
    out.write(f"traffic: {', '.join(f'{dc} {len(a)} router(s)' for dc, a in routers.items())}"
              f", {args.keys} keys, {args.readers_per_dc} readers/DC, "
              f"{args.writes_per_sec:g} purges/s, hold-off {args.holdoff:g} s, "
              f"{args.duration:g} s (Ctrl-C stops)\n")
    out.flush()
    traffic.start()
    interrupted = False
    try:
        deadline = time.monotonic() + args.duration
        last = traffic.snapshot()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(args.interval, left))
            now = traffic.snapshot()
            out.write(f"[{now.elapsed:5.1f}s] {(now - last).progress_line()}\n")
            out.flush()
            last = now
    except KeyboardInterrupt:
        interrupted = True
    finally:
        final = traffic.stop()
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
    out.write(("\ninterrupted\n" if interrupted else "\n") + final.summary_table() + "\n")
    if args.json:
        import json
        out.write(json.dumps(final.as_dict(), indent=2, sort_keys=True) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
