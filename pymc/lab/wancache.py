"""A client that uses memcached the way MediaWiki's WANObjectCache does (MW 1.36–1.40).

One ``WANCache`` talks to one router (``"127.0.0.1:port"``) over one plain blocking socket in
the memcached text protocol. It is not thread-safe: give each thread its own instance.

Semantics (see ``../shared/design/WANCACHE-NOTES.md``):

- Sister keys on one shard thanks to mcrouter's hash stop: ``WANCache:<key>|#|v`` (value or
  tombstone), ``|#|t`` (check-key purge time), ``|#|m`` (regeneration mutex), ``|#|i``
  (interim value).
- Only purges (``delete``, ``touch_check_key``, ``reset_check_key``) carry the broadcast
  prefix ``/*/mw-wan/`` (``purge_prefix``); everything else goes to the router's default,
  local route.
- ``delete`` writes a tombstone ``PURGED:<now>`` for ``holdoff`` seconds; ``set`` does not
  overwrite a tombstone (``add`` when creating, else a CAS merge that aborts on one), so stale
  values computed before a purge cannot land during the hold-off.
- ``get_with_set`` serves fresh values, regenerates missing/stale ones through a callback,
  writes an interim value (1 s) instead of the real one while the key is tombstoned, takes the
  lock ``add(m, 1, 10)`` when the key is tombstoned or recently purged (losers get the stale or
  interim value, or ``busy_value``), and refreshes values early with a probability that grows
  as they near expiry (``low_ttl``) or age past ``age_new`` (popularity refresh).

Time is ``clock()`` (injectable) and every constant can be overridden per instance, so tests
and lab scenarios can scale time (``WANCache(addr, holdoff=2)``). TTLs sent to memcached are
whole seconds, at least 1 (0 would mean "never expires").

Errors never raise: a ``SERVER_ERROR``/``CLIENT_ERROR`` reply, an unexpected reply or a socket
failure is counted in ``errors`` (a Counter by kind, see ``error_kind``) and the operation
reports failure (a miss for reads, False for writes). A socket failure closes the connection;
the next operation reconnects.
"""

from __future__ import annotations

import collections
import math
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from .wire import parse_address

# MediaWiki's constants (seconds)
HOLDOFF_TTL = 11.0
LOW_TTL = 30.0
TTL_LAGGED = 30.0
HOT_TTR = 900.0
AGE_NEW = 60.0
RAMPUP_TTL = 30.0
CHECK_KEY_TTL = 365 * 86400
INTERIM_KEY_TTL = 1.0
LOCK_TTL = 10.0
COOLOFF_TTL = 1.0
RECENT_SET_LOW = 0.050
RECENT_SET_HIGH = 0.100
TINY_NEGATIVE = -0.000001

PURGE_PREFIX = "/*/mw-wan/"
KEY_PREFIX = "WANCache:"
HASH_STOP = "|#|"
TYPE_VALUE, TYPE_CHECK, TYPE_MUTEX, TYPE_INTERIM, TYPE_COOLOFF = "v", "t", "m", "i", "c"

PURGE_MARK = "PURGED:"
WRAP_MARK = "W1:"  # stored values: W1:<ttl>:<asOf>:<value>

# memcached reads an exptime over 30 days as an absolute unix time (as MediaWiki's
# MemcachedBagOStuff does, longer TTLs are converted).
RELATIVE_TTL_MAX = 30 * 86400

#: Sources of a ``get_with_set`` value that come from the cache (the callback did not run).
CACHED_SOURCES = frozenset(("hit", "stale", "interim", "recent"))


class _SocketFailure(Exception):
    pass


def error_kind(line: str) -> str:
    """A short, stable name for an error reply line (``SERVER_ERROR timeout`` → ``timeout``)."""
    text = line.strip()
    word, _, message = text.partition(" ")
    low = message.lower()
    if word == "SERVER_ERROR":
        for needle, kind in (("no rh found", "no_route"), ("unavailable", "unavailable"),
                             ("tko", "unavailable"), ("timeout", "timeout"),
                             ("connection", "connection"), ("connect", "connection"),
                             ("max pending", "busy"), ("out of memory", "out_of_memory")):
            if needle in low:
                return "server_error:" + kind
        return "server_error"
    if word == "CLIENT_ERROR":
        return "client_error"
    if word == "ERROR":
        return "error"
    return "protocol"


@dataclass
class GetResult:
    """What ``WANCache.get`` saw for a key.

    ``value`` is None when the key is missing or tombstoned. ``cur_ttl``: seconds left (inf for
    no TTL), negative when the value is stale (a check key was touched after or within the
    hold-off before it was set) or tombstoned (then: minus the seconds since the purge); None
    when missing. ``as_of``: when the value was generated. ``tombstone_as_of``: the purge time
    if tombstoned. ``touch_as_of``: the latest check-key purge time. ``error``: the error kind
    if the read failed (then it is reported as a miss)."""

    value: Optional[str] = None
    cur_ttl: Optional[float] = None
    as_of: Optional[float] = None
    ttl: Optional[float] = None
    tombstone_as_of: Optional[float] = None
    touch_as_of: Optional[float] = None
    error: Optional[str] = None

    @property
    def tombstoned(self) -> bool:
        return self.tombstone_as_of is not None

    @property
    def stale(self) -> bool:
        return self.value is not None and self.cur_ttl is not None and self.cur_ttl <= 0


@dataclass
class FetchResult:
    """What ``WANCache.get_with_set`` returned and where it came from.

    ``source``: ``hit`` (fresh cached value), ``recent`` (a value set in the last 50–100 ms
    after a purge), ``interim`` (the interim value of a tombstoned key), ``stale`` (a stale
    value served because another client holds the lock), ``busy`` (``busy_value``: the lock was
    taken and nothing else was usable), ``callback`` (the callback ran). ``stored``: whether the
    regenerated value was written (value or interim key). ``errors``: error kinds met during
    this call (they are also counted on the instance)."""

    value: Any
    source: str
    stored: bool = False
    errors: list = field(default_factory=list)

    @property
    def hit(self) -> bool:
        """Served from the cache without running the callback."""
        return self.source in CACHED_SOURCES


def _memcached_ttl(seconds: float) -> int:
    """A TTL in seconds as memcached's exptime: whole seconds, at least 1, absolute past 30
    days."""
    whole = max(1, int(math.ceil(seconds - 1e-9)))
    if whole > RELATIVE_TTL_MAX:
        return int(time.time()) + whole
    return whole


class WANCache:
    """WANObjectCache over one router. Not thread-safe: one instance per thread."""

    def __init__(self, address: str, *, clock: Callable[[], float] = time.time,
                 purge_prefix: str = PURGE_PREFIX, timeout: float = 2.0,
                 holdoff: float = HOLDOFF_TTL, interim_ttl: float = INTERIM_KEY_TTL,
                 lock_ttl: float = LOCK_TTL, low_ttl: float = LOW_TTL,
                 age_new: float = AGE_NEW, hot_ttr: float = HOT_TTR,
                 rampup_ttl: float = RAMPUP_TTL, check_key_ttl: float = CHECK_KEY_TTL,
                 recent_set_window: tuple[float, float] = (RECENT_SET_LOW, RECENT_SET_HIGH),
                 rng: Optional[random.Random] = None) -> None:
        self.address = address
        self.host, self.port = parse_address(address, any_port=False)
        self.clock = clock
        self.purge_prefix = purge_prefix
        self.timeout = timeout
        self.holdoff = holdoff
        self.interim_ttl = interim_ttl
        self.lock_ttl = lock_ttl
        self.low_ttl = low_ttl
        self.age_new = age_new
        self.hot_ttr = hot_ttr
        self.rampup_ttl = rampup_ttl
        self.check_key_ttl = check_key_ttl
        self.recent_set_window = recent_set_window
        self.rng = rng or random.Random()
        #: error kind → count, for the life of the instance
        self.errors: collections.Counter = collections.Counter()
        #: the last error line seen (for diagnostics)
        self.last_error: Optional[str] = None
        self.last_error_kind: Optional[str] = None
        self._sock: Optional[socket.socket] = None
        self._buf = b""
        self._call_errors: Optional[list] = None

    # ------------------------------------------------------------------ keys and values

    @staticmethod
    def sister_key(key: str, kind: str) -> str:
        return f"{KEY_PREFIX}{key}{HASH_STOP}{kind}"

    @staticmethod
    def wrap(value: str, ttl: float, as_of: float) -> str:
        return f"{WRAP_MARK}{ttl!r}:{as_of:.6f}:{value}"

    @staticmethod
    def unwrap(raw: Optional[str]) -> tuple[Optional[str], Optional[float], Optional[float],
                                            Optional[float]]:
        """(value, ttl, as_of, tombstone time) of a stored ``v``/``i`` value."""
        if raw is None:
            return None, None, None, None
        if raw.startswith(PURGE_MARK):
            try:
                return None, None, None, float(raw[len(PURGE_MARK):].split(":")[0])
            except ValueError:
                return None, None, None, None
        if raw.startswith(WRAP_MARK):
            parts = raw[len(WRAP_MARK):].split(":", 2)
            if len(parts) == 3:
                try:
                    return parts[2], float(parts[0]), float(parts[1]), None
                except ValueError:
                    pass
        return None, None, None, None

    @staticmethod
    def _parse_check(raw: Optional[str]) -> Optional[tuple[float, float]]:
        if raw is None or not raw.startswith(PURGE_MARK):
            return None
        parts = raw[len(PURGE_MARK):].split(":")
        try:
            return float(parts[0]), float(parts[1]) if len(parts) > 1 else HOLDOFF_TTL
        except ValueError:
            return None

    # ------------------------------------------------------------------ the public API

    def get(self, key: str, check_keys: Iterable[str] = ()) -> GetResult:
        """The value with its metadata; stale values are returned with a negative ``cur_ttl``."""
        return self._fetch(key, list(check_keys), self.clock())

    def set(self, key: str, value: str, ttl: float, *, creating: bool = False,
            as_of: Optional[float] = None) -> bool:
        """Store ``value`` for ``ttl`` seconds (0: no expiry). ``creating``: ``add`` (the caller
        saw no value); otherwise a CAS merge that aborts when the current value is a tombstone.
        Returns whether it was stored."""
        now = self.clock()
        wrapped = self.wrap(value, ttl, now if as_of is None else as_of)
        vkey = self.sister_key(key, TYPE_VALUE)
        exptime = _memcached_ttl(ttl) if ttl > 0 else 0
        if creating:
            return self._store("add", vkey, wrapped, exptime) == "STORED"
        found = self._get_multi([vkey], cas=True)
        if found is None:
            return False
        if vkey not in found:
            return self._store("add", vkey, wrapped, exptime) == "STORED"
        raw, cas_unique = found[vkey]
        if raw.startswith(PURGE_MARK):
            return False  # tombstoned: writes are held off
        return self._store("cas", vkey, wrapped, exptime, cas_unique) == "STORED"

    def delete(self, key: str, ttl: Optional[float] = None) -> bool:
        """Purge ``key`` in every DC: a tombstone ``PURGED:<now>`` for the hold-off (a plain
        delete when the hold-off is 0). Returns whether the router reported success."""
        holdoff = self.holdoff if ttl is None else ttl
        vkey = self.purge_prefix + self.sister_key(key, TYPE_VALUE)
        if holdoff <= 0:
            return self._simple(f"delete {vkey}") in ("DELETED", "NOT_FOUND")
        now = self.clock()
        return self._store("set", vkey, f"{PURGE_MARK}{now:.6f}",
                           _memcached_ttl(holdoff)) == "STORED"

    def touch_check_key(self, key: str, holdoff: Optional[float] = None) -> bool:
        """Mark every value that uses check key ``key`` stale, in every DC."""
        holdoff = self.holdoff if holdoff is None else holdoff
        tkey = self.purge_prefix + self.sister_key(key, TYPE_CHECK)
        return self._store("set", tkey, f"{PURGE_MARK}{self.clock():.6f}:{holdoff!r}",
                           _memcached_ttl(self.check_key_ttl)) == "STORED"

    def reset_check_key(self, key: str) -> bool:
        tkey = self.purge_prefix + self.sister_key(key, TYPE_CHECK)
        return self._simple(f"delete {tkey}") in ("DELETED", "NOT_FOUND")

    def get_check_key_time(self, key: str) -> Optional[float]:
        """The purge time of check key ``key``, creating it (purged now) if missing."""
        result = self._fetch_check_times([key], self.clock())
        return result[0][0] if result else None

    def get_with_set(self, key: str, ttl: float, callback: Callable[[Optional[str]], Any], *,
                     check_keys: Iterable[str] = (), busy_value: Any = None,
                     lock_tse: Optional[float] = None, low_ttl: Optional[float] = None,
                     age_new: Optional[float] = None,
                     hot_ttr: Optional[float] = None) -> FetchResult:
        """The cached value of ``key``, or ``callback(old_value)`` stored for ``ttl`` seconds.

        ``callback`` gets the previous value (None if none) and returns the new one (a str), or
        None to cache nothing. ``busy_value`` (a value or a zero-argument callable) is returned
        when another client holds the regeneration lock and no stale or interim value is
        usable; with it, a missing key also takes the lock. ``lock_tse``: a value stale for at
        most this long (default: the hold-off) is regenerated under the lock."""
        errors: list = []
        self._call_errors = errors
        try:
            return self._get_with_set(key, ttl, callback, list(check_keys), busy_value,
                                      self.holdoff if lock_tse is None else lock_tse,
                                      low_ttl, age_new, hot_ttr, errors)
        finally:
            self._call_errors = None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._buf = b""

    def __enter__(self) -> "WANCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    # ------------------------------------------------------------------ getWithSet

    def _get_with_set(self, key, ttl, callback, check_keys, busy_value, lock_tse, low_ttl,
                      age_new, hot_ttr, errors) -> FetchResult:
        now = self.clock()
        cur = self._fetch(key, check_keys, now)
        # 1. a fresh value, unless a probabilistic early refresh is due
        if cur.value is not None and cur.cur_ttl is not None and cur.cur_ttl > 0:
            low = min(self.low_ttl if low_ttl is None else low_ttl, ttl) if ttl > 0 else 0
            if not (self._worth_refresh_expiring(cur.cur_ttl, low) or
                    self._worth_refresh_popular(cur.as_of, now,
                                                self.age_new if age_new is None else age_new,
                                                self.hot_ttr if hot_ttr is None else hot_ttr)):
                return FetchResult(cur.value, "hit", errors=errors)
        tombstoned = cur.tombstoned
        # 2. a tombstoned key: the interim value, if written after the purge and very recent
        if tombstoned:
            vol = self._get_interim(key)
        else:
            vol = cur
        last_purge = max(cur.touch_as_of or 0.0, cur.tombstone_as_of or 0.0)
        if vol.value is not None and vol.as_of is not None and vol.as_of > last_purge:
            if now - vol.as_of < self.rng.uniform(*self.recent_set_window):
                return FetchResult(vol.value, "interim" if tombstoned else "recent",
                                   errors=errors)
        # 3. the regeneration lock when tombstoned or recently purged (or a busy value given)
        use_lock = (tombstoned or
                    (cur.value is not None and cur.cur_ttl is not None and cur.cur_ttl <= 0 and
                     abs(cur.cur_ttl) <= lock_tse) or
                    (busy_value is not None and vol.value is None))
        has_lock = False
        mkey = self.sister_key(key, TYPE_MUTEX)
        if use_lock:
            has_lock = self._store("add", mkey, "1", _memcached_ttl(self.lock_ttl)) == "STORED"
            if not has_lock:
                if vol.value is not None:
                    return FetchResult(vol.value, "interim" if tombstoned else "stale",
                                       errors=errors)
                if busy_value is not None:
                    value = busy_value() if callable(busy_value) else busy_value
                    return FetchResult(value, "busy", errors=errors)
        # 4. regenerate
        as_of = self.clock()
        value = callback(cur.value)
        stored = False
        if value is not None and ttl >= 0 and (not use_lock or has_lock or tombstoned):
            if tombstoned:
                interim_ttl = self.interim_ttl
                stored = self._store("set", self.sister_key(key, TYPE_INTERIM),
                                     self.wrap(value, interim_ttl, as_of),
                                     _memcached_ttl(interim_ttl)) == "STORED"
            else:
                stored = self.set(key, value, ttl, creating=cur.value is None, as_of=as_of)
        # 5. release the lock by expiring it
        if has_lock:
            self._simple(f"touch {mkey} -1")
        return FetchResult(value, "callback", stored=stored, errors=errors)

    def _worth_refresh_expiring(self, cur_ttl: float, low_ttl: float) -> bool:
        if low_ttl <= 0 or cur_ttl >= low_ttl or cur_ttl <= 0:
            return False
        return self.rng.random() < 1.0 - cur_ttl / low_ttl

    def _worth_refresh_popular(self, as_of: Optional[float], now: float, age_new: float,
                               hot_ttr: float) -> bool:
        if as_of is None or age_new < 0 or hot_ttr <= 0:
            return False
        time_old = (now - as_of) - age_new
        if time_old <= 0:
            return False
        window = max(hot_ttr - age_new - self.rampup_ttl / 2, 1.0)
        chance = 1.0 / window  # one popular hit per second
        if time_old <= self.rampup_ttl:
            chance *= time_old / self.rampup_ttl
        return self.rng.random() < chance

    # ------------------------------------------------------------------ reads

    def _fetch(self, key: str, check_keys: list, now: float) -> GetResult:
        vkey = self.sister_key(key, TYPE_VALUE)
        tkeys = [self.sister_key(check, TYPE_CHECK) for check in check_keys]
        found = self._get_multi([vkey] + tkeys)
        if found is None:
            return GetResult(error=self.last_error_kind)
        purges = self._check_times(found, tkeys, now)
        raw = found[vkey][0] if vkey in found else None
        value, ttl, as_of, tomb = self.unwrap(raw)
        result = GetResult(value=value, as_of=as_of, ttl=ttl, tombstone_as_of=tomb)
        if tomb is not None:
            result.cur_ttl = min(tomb - now, TINY_NEGATIVE)
        elif value is not None:
            result.cur_ttl = ttl - (now - as_of) if ttl and ttl > 0 else math.inf
        for purge_time, holdoff in purges:
            if value is not None and purge_time + holdoff >= as_of:
                result.cur_ttl = min(result.cur_ttl, min(purge_time - now, TINY_NEGATIVE))
            result.touch_as_of = max(result.touch_as_of or 0.0, purge_time)
        return result

    def _fetch_check_times(self, check_keys: list, now: float) -> list:
        tkeys = [self.sister_key(check, TYPE_CHECK) for check in check_keys]
        found = self._get_multi(tkeys)
        if found is None:
            return []
        return self._check_times(found, tkeys, now)

    def _check_times(self, found: dict, tkeys: list, now: float) -> list:
        """(purge time, hold-off) per check key; a missing check key is created, and counts
        as purged now."""
        out = []
        for tkey in tkeys:
            purge = self._parse_check(found[tkey][0]) if tkey in found else None
            if purge is None:
                self._store("add", tkey, f"{PURGE_MARK}{now:.6f}:{self.holdoff!r}",
                            _memcached_ttl(self.check_key_ttl))
                purge = (now, self.holdoff)
            out.append(purge)
        return out

    def _get_interim(self, key: str) -> GetResult:
        ikey = self.sister_key(key, TYPE_INTERIM)
        found = self._get_multi([ikey])
        if not found or ikey not in found:
            return GetResult()
        value, ttl, as_of, _ = self.unwrap(found[ikey][0])
        return GetResult(value=value, ttl=ttl, as_of=as_of)

    # ------------------------------------------------------------------ the wire

    def _error(self, kind: str, line: str) -> None:
        self.errors[kind] += 1
        self.last_error = line
        self.last_error_kind = kind
        if self._call_errors is not None:
            self._call_errors.append(kind)

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._buf = b""
        return self._sock

    def _send(self, data: bytes) -> None:
        try:
            self._connect().sendall(data)
        except OSError as exc:
            self.close()
            raise _SocketFailure(exc) from exc

    def _line(self) -> str:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line, self._buf = self._buf[:end], self._buf[end + 2:]
                return line.decode("utf-8", "replace")
            self._fill()

    def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _fill(self) -> None:
        try:
            chunk = self._sock.recv(65536) if self._sock is not None else b""
        except OSError as exc:
            self.close()
            raise _SocketFailure(exc) from exc
        if not chunk:
            self.close()
            raise _SocketFailure("connection closed")
        self._buf += chunk

    def _socket_error(self, exc: _SocketFailure) -> None:
        cause = exc.__cause__
        kind = "socket:timeout" if isinstance(cause, socket.timeout) else (
            "socket:refused" if isinstance(cause, ConnectionRefusedError) else "socket:closed")
        self._error(kind, f"{kind} {exc}")

    def _simple(self, command: str) -> Optional[str]:
        """One command with a one-line reply; None (counted) on an error."""
        try:
            self._send(command.encode() + b"\r\n")
            line = self._line()
        except _SocketFailure as exc:
            self._socket_error(exc)
            return None
        if line.startswith(("SERVER_ERROR", "CLIENT_ERROR", "ERROR")):
            self._error(error_kind(line), line)
            if line.startswith(("CLIENT_ERROR", "ERROR")):
                self.close()  # the stream may be out of step
            return None
        return line

    def _store(self, command: str, key: str, value: str, exptime: int,
               cas_unique: Optional[int] = None) -> Optional[str]:
        data = value.encode()
        head = f"{command} {key} 0 {exptime} {len(data)}"
        if cas_unique is not None:
            head += f" {cas_unique}"
        try:
            self._send(head.encode() + b"\r\n" + data + b"\r\n")
            line = self._line()
        except _SocketFailure as exc:
            self._socket_error(exc)
            return None
        if line in ("STORED", "NOT_STORED", "EXISTS", "NOT_FOUND"):
            return line
        self._error(error_kind(line), line)
        if not line.startswith("SERVER_ERROR"):
            self.close()
        return None

    def _get_multi(self, keys: list, cas: bool = False) -> Optional[dict]:
        """key → (value, cas unique or None) for the keys found; None (counted) on an error.
        As in mcrouter, an error line may replace END in a multi-get."""
        command = b"gets " if cas else b"get "
        try:
            self._send(command + " ".join(keys).encode() + b"\r\n")
            found: dict = {}
            while True:
                line = self._line()
                if line == "END":
                    return found
                if line.startswith("VALUE "):
                    parts = line.split()
                    if len(parts) < 4 or not parts[3].isdigit():
                        self._error("protocol", line)
                        self.close()
                        return None
                    data = self._exactly(int(parts[3]) + 2)[:-2]
                    found[parts[1]] = (data.decode("utf-8", "replace"),
                                       int(parts[4]) if len(parts) > 4 else None)
                    continue
                self._error(error_kind(line), line)
                if not line.startswith("SERVER_ERROR"):
                    self.close()
                return None
        except _SocketFailure as exc:
            self._socket_error(exc)
            return None
