"""TKO ("technical knock-out") tracking: when to stop sending to a server, and when to probe it.

As mcrouter's TkoTracker and ProxyDestinationBase::handleTko:

- a *soft* TKO after ``threshold`` timeouts with no good reply in between (other errors
  neither count nor reset the count);
- a *hard* TKO at once on connect_error, connect_timeout or shutdown (a soft TKO can turn
  hard);
- while TKO nothing is sent; only a good reply to a *probe* ends it. Probes go one at a time,
  the first after ``probe_initial`` × (1 + 5..50 % jitter), each next one 1.5 × later, up to
  ``probe_max`` (before jitter).

One tracker per ``host:port`` is shared by every destination naming that server (mcrouter's
TkoTrackerMap); the destination that marked it TKO is the one that probes. Time comes from
the caller; nothing here does I/O.
"""

from __future__ import annotations

import random
from typing import Callable

from .results import ERRORS

SOFT_ERRORS = frozenset(("timeout",))
HARD_ERRORS = frozenset(("connect_error", "connect_timeout", "shutdown"))

PROBE_GROWTH = 1.5
PROBE_JITTER_MIN = 0.05
PROBE_JITTER_MAX = 0.5


class TkoTracker:
    __slots__ = ("key", "threshold", "soft_failures", "consecutive_failures", "state",
                 "reason", "since", "owner", "listeners", "clock")

    def __init__(self, key: str, threshold: int, clock: Callable[[], float]) -> None:
        self.key = key
        self.threshold = max(int(threshold), 1)
        #: timeouts counted towards a soft TKO since the last good reply
        self.soft_failures = 0
        #: every failure since the last good reply (``stats suspect_servers``' num_failures)
        self.consecutive_failures = 0
        #: None, "soft" or "hard"
        self.state: str | None = None
        self.reason = ""
        self.since = 0.0
        #: the destination responsible for the TKO (it sends the probes)
        self.owner = None
        #: destinations to tell when the state changes (they cache "may I send")
        self.listeners: list = []
        self.clock = clock

    @property
    def is_tko(self) -> bool:
        return self.state is not None

    @property
    def is_soft(self) -> bool:
        return self.state == "soft"

    @property
    def is_hard(self) -> bool:
        return self.state == "hard"

    @property
    def suspect(self) -> bool:
        return self.consecutive_failures > 0

    def unavailable_message(self) -> str:
        """The text of mcrouter's fast-fail reply while TKO."""
        return f"Server unavailable. Reason: mc_res_{self.reason}"

    # -- recording ----------------------------------------------------------------------------

    def record(self, result: str, owner, probe: bool = False) -> str | None:
        """Account one result name for ``owner``'s request; returns "tko" when this made the
        server TKO (the owner starts probing), "up" when it ended a TKO (stop probing)."""
        if result in HARD_ERRORS:
            return self._hard_failure(result, owner)
        if result in SOFT_ERRORS:
            return self._soft_failure(result, owner)
        if result in ERRORS:
            return None
        if self.state is not None:
            if probe and owner is self.owner:
                self._clear()
                return "up"
            return None
        self.soft_failures = 0
        self.consecutive_failures = 0
        return None

    def _soft_failure(self, result: str, owner) -> str | None:
        self.consecutive_failures += 1
        if self.state is not None:
            return None
        self.soft_failures += 1
        if self.soft_failures < self.threshold:
            return None
        self._mark("soft", result, owner)
        return "tko"

    def _hard_failure(self, result: str, owner) -> str | None:
        self.consecutive_failures += 1
        if self.state == "hard":
            return None
        if self.state == "soft":
            # The responsible destination keeps probing; the reason stays the soft one, as
            # mcrouter only converts the counter.
            if owner is self.owner:
                self.state = "hard"
                self._notify()
            return None
        self._mark("hard", result, owner)
        return "tko"

    def _mark(self, state: str, reason: str, owner) -> None:
        self.state = state
        self.reason = reason
        self.owner = owner
        self.since = self.clock()
        self._notify()

    def _clear(self) -> None:
        self.state = None
        self.reason = ""
        self.owner = None
        self.soft_failures = 0
        self.consecutive_failures = 0
        self._notify()

    def forget(self, owner) -> bool:
        """``owner`` leaves the config: a TKO it was responsible for ends (nobody would probe
        it any more), as mcrouter's removeDestination. True when that happened."""
        if owner in self.listeners:
            self.listeners.remove(owner)
        if self.state is not None and owner is self.owner:
            self._clear()
            return True
        return False

    def _notify(self) -> None:
        for listener in self.listeners:
            listener.tko_changed()


class ProbeBackoff:
    """Delays between probes: ``initial`` ms, then ×1.5 up to ``maximum`` ms, each with
    5–50 % random jitter added (mcrouter's scheduleNextProbe)."""

    def __init__(self, initial_ms: int, maximum_ms: int,
                 rand: Callable[[], float] = random.random) -> None:
        self.next_ms = float(max(initial_ms, 1))
        self.maximum_ms = float(max(maximum_ms, 1))
        self.rand = rand

    def next_delay(self) -> float:
        """Seconds until the next probe."""
        delay = self.next_ms
        self.next_ms = 2.0 if self.next_ms < 2 else self.next_ms * PROBE_GROWTH
        self.next_ms = min(self.next_ms, self.maximum_ms)
        jitter = PROBE_JITTER_MIN + self.rand() * (PROBE_JITTER_MAX - PROBE_JITTER_MIN)
        return delay * (1.0 + jitter) / 1000.0


class TkoTrackers:
    """The trackers of one router, by ``host:port``; kept across config reloads so a server
    that stays in the config keeps its TKO state."""

    def __init__(self, threshold: int, clock: Callable[[], float]) -> None:
        self.threshold = threshold
        self.clock = clock
        self.by_key: dict[str, TkoTracker] = {}

    def get(self, key: str) -> TkoTracker:
        tracker = self.by_key.get(key)
        if tracker is None:
            tracker = self.by_key[key] = TkoTracker(key, self.threshold, self.clock)
        return tracker

    def suspects(self) -> list[TkoTracker]:
        return [tracker for tracker in self.by_key.values() if tracker.suspect]
