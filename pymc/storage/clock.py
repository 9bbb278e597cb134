"""Server time as memcached keeps it: whole seconds relative to process start.

memcached stores times as ``rel_time_t`` (seconds since the process started, minus a small
offset so that the first second is not 0). Exptimes up to 30 days are relative; larger values
are absolute unix times. Storage only ever asks a Clock, so tests need no sleeps.
"""

from __future__ import annotations

import time
from typing import Protocol

#: Exptimes above this many seconds are absolute unix times (memcached's REALTIME_MAXDELTA).
REALTIME_MAXDELTA = 60 * 60 * 24 * 30
#: memcached starts its clock this far in the past so that early items have nonzero times.
START_OFFSET = 60 + 2


class Clock(Protocol):
    def now(self) -> int:
        """Current relative time, in whole seconds."""

    @property
    def process_started(self) -> float:
        """Unix time that relative time 0 stands for."""


class SystemClock:
    """Wall-clock seconds since start, shiftable by ``advance`` (memcached's debugtime)."""

    def __init__(self, started: float | None = None) -> None:
        wall = time.time() if started is None else started
        self._process_started = float(int(wall) - START_OFFSET)
        # relative time = monotonic() - _origin (+ debugtime shifts folded into _origin)
        self._origin = time.monotonic() - (wall - self._process_started)

    @property
    def process_started(self) -> float:
        return self._process_started

    def now(self, _monotonic=time.monotonic) -> int:
        return int(_monotonic() - self._origin)

    def advance(self, seconds: int) -> None:
        self._origin -= seconds

    def unix_now(self) -> int:
        return int(self._process_started) + self.now()


class TestClock:
    """A clock that moves only when told to."""

    __test__ = False  # not a pytest test class

    def __init__(self, unix_time: float = 1_700_000_000.0) -> None:
        self._process_started = float(int(unix_time) - START_OFFSET)
        self._now = START_OFFSET

    @property
    def process_started(self) -> float:
        return self._process_started

    def now(self) -> int:
        return self._now

    def advance(self, seconds: int) -> None:
        self._now += seconds

    def unix_now(self) -> int:
        return int(self._process_started) + self._now


def realtime(exptime: int, clock: Clock) -> int:
    """memcached's realtime(): a client exptime to relative time (0 = never expires).

    Negative exptimes mean "already expired"; absolute times at or before process start too.
    """
    if exptime == 0:
        return 0
    if exptime < 0:
        return 1
    if exptime > REALTIME_MAXDELTA:
        started = int(clock.process_started)
        if exptime <= started:
            return 1
        return exptime - started
    return exptime + clock.now()
