"""TkoTracker and ProbeBackoff: mcrouter's TKO rules, with an injected clock."""

import pytest

from pymc.router.tko import ProbeBackoff, TkoTracker, TkoTrackers


class Owner:
    def __init__(self):
        self.changes = 0

    def tko_changed(self):
        self.changes += 1


@pytest.fixture
def clock():
    now = [100.0]
    return now


@pytest.fixture
def tracker(clock):
    return TkoTracker("127.0.0.1:11211", 3, lambda: clock[0])


def test_soft_tko_after_threshold_timeouts(tracker):
    a = Owner()
    tracker.listeners.append(a)
    assert tracker.record("timeout", a) is None
    assert tracker.record("timeout", a) is None
    assert not tracker.is_tko and tracker.suspect
    assert tracker.record("timeout", a) == "tko"
    assert tracker.is_soft and not tracker.is_hard
    assert tracker.unavailable_message() == "Server unavailable. Reason: mc_res_timeout"
    assert tracker.since == 100.0 and a.changes == 1


def test_good_reply_resets_the_count_other_errors_neither_count_nor_reset(tracker):
    a = Owner()
    tracker.record("timeout", a)
    tracker.record("timeout", a)
    tracker.record("remote_error", a)
    tracker.record("notfound", a)  # a miss is a good reply
    assert tracker.consecutive_failures == 0
    tracker.record("timeout", a)
    tracker.record("remote_error", a)
    tracker.record("timeout", a)
    assert not tracker.is_tko
    assert tracker.record("timeout", a) == "tko"


@pytest.mark.parametrize("reason", ["connect_error", "connect_timeout", "shutdown"])
def test_hard_tko_at_once(tracker, reason):
    a = Owner()
    assert tracker.record(reason, a) == "tko"
    assert tracker.is_hard and tracker.reason == reason
    assert tracker.unavailable_message() == f"Server unavailable. Reason: mc_res_{reason}"


def test_soft_tko_turns_hard_for_its_owner_only(tracker):
    a, b = Owner(), Owner()
    for _ in range(3):
        tracker.record("timeout", a)
    assert tracker.record("connect_error", b) is None
    assert tracker.is_soft
    assert tracker.record("connect_error", a) is None
    assert tracker.is_hard


def test_only_a_probe_of_the_owner_ends_a_tko(tracker):
    a, b = Owner(), Owner()
    tracker.record("connect_error", a)
    assert tracker.record("stored", a) is None  # an old request's late good reply
    assert tracker.record("found", b, probe=True) is None
    assert tracker.is_tko
    assert tracker.record("timeout", a, probe=True) is None
    assert tracker.consecutive_failures == 2
    assert tracker.record("ok", a, probe=True) == "up"
    assert not tracker.is_tko and tracker.consecutive_failures == 0 and not tracker.suspect


def test_forget_by_owner_clears(tracker):
    a, b = Owner(), Owner()
    tracker.listeners += [a, b]
    tracker.record("connect_error", a)
    assert not tracker.forget(b)
    assert tracker.is_tko
    assert tracker.forget(a)
    assert not tracker.is_tko and tracker.listeners == []


def test_trackers_shared_by_host_port(clock):
    trackers = TkoTrackers(3, lambda: clock[0])
    assert trackers.get("h:1") is trackers.get("h:1")
    assert trackers.get("h:2") is not trackers.get("h:1")
    trackers.get("h:2").record("timeout", Owner())
    assert [t.key for t in trackers.suspects()] == ["h:2"]


def test_probe_backoff_grows_by_half_with_jitter_up_to_max():
    # rand()=0 gives the minimum jitter (5 %), rand()=1 the maximum (50 %)
    low = ProbeBackoff(1000, 3000, rand=lambda: 0.0)
    assert [round(low.next_delay(), 4) for _ in range(5)] == [1.05, 1.575, 2.3625, 3.15, 3.15]
    high = ProbeBackoff(1000, 60000, rand=lambda: 1.0)
    assert round(high.next_delay(), 4) == 1.5


def test_probe_backoff_jitter_is_random_within_bounds():
    backoff = ProbeBackoff(10000, 10000)
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(10.5 <= d <= 15.0 for d in delays)
    assert len(set(delays)) > 100
