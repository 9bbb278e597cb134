"""The lab's scenarios: faults + WANObjectCache-like traffic + checks, narrated as they run,
each ending PASS or FAIL with the numbers behind it.

    pymc lab scenario list
    pymc lab scenario run shard-down [--dir D] [--scale 0.5] [--json]

``run`` uses the lab running in ``--dir``; with none there it brings one up for the scenario
(free ports) and down afterwards. The scenarios (see ``SCENARIOS``):

shard-down         a main shard is killed: gutter takes over, no client errors after the TKO,
                   keys come back when the shard does
shard-hang         a shard stops answering: timeouts, then soft TKO, then fast failover
dc-partition       the WAN link is cut: local traffic keeps working, purges to the other DC
                   are lost, and what a user sees after healing (stale values)
purge-propagation  a purge in one DC makes the other DC's value stale within the hold-off
rolling-restart    every main shard of a DC restarted in turn under traffic
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

from .scenario_kit import (SCENARIOS, ScenarioFailed, ScenarioRun, no_tko, run_scenario,
                           scenario)
from .traffic import bounded_number
from .wire import ask

HOME, AWAY = 0, 1  # indexes into lab.dcs


# -- small helpers --------------------------------------------------------------------------------

def _call(address: str, data: bytes, end: bytes = b"\r\n", timeout: float = 2.0) -> bytes:
    return ask(address, data, lambda reply: reply.endswith(end), timeout)


def _get(address: str, key: str) -> bytes | None:
    reply = _call(address, b"get %s\r\n" % key.encode(), end=b"END\r\n")
    if reply.startswith(b"VALUE"):
        return reply.split(b"\r\n")[1]
    if reply == b"END\r\n":
        return None
    raise ScenarioFailed(f"get {key} from {address}: {reply[:80]!r}")


def _set(address: str, key: str, value: bytes, exptime: int = 0) -> bytes:
    return _call(address, b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), exptime, len(value),
                                                         value))


def _tko_seen_by(run: ScenarioRun, node: str, routers: list[str]) -> bool:
    return all("status:tko" in run.lab.suspect_servers(r).get(node, "") for r in routers)


def _clear_for(run: ScenarioRun, node: str, routers: list[str]) -> bool:
    """No router holds ``node`` TKO any more (probes took it back)."""
    return all("status:tko" not in run.lab.suspect_servers(r).get(node, "") for r in routers)


def _take_down(run: ScenarioRun, node: str, kind: str, routers: list[str],
               timeout: float = 20) -> float:
    """Inject ``kind`` into ``node`` and wait until every router in ``routers`` holds it
    TKO; the seconds that took."""
    run.say(run.lab.fail(node, kind))
    start = time.monotonic()
    run.wait_until(lambda: _tko_seen_by(run, node, routers), timeout,
                   f"{', '.join(routers)} to mark {node} TKO")
    return time.monotonic() - start


def _bring_back(run: ScenarioRun, node: str, routers: list[str]) -> float:
    """Heal ``node`` and wait until probes took it back on every router; the seconds."""
    run.say(" ".join(run.lab.heal(node)) or f"healed {node}")
    start = time.monotonic()
    run.wait_until(lambda: _clear_for(run, node, routers), 30,
                   f"probes to clear {node}'s TKO")
    return time.monotonic() - start


def _no_errors_after(run: ScenarioRun, traffic, dc: str, label: str) -> None:
    final = _window(run, traffic, 2, label)
    run.check(f"no errors {label}", final.per_dc[dc].error_count == 0,
              f"{_errors(final.per_dc[dc])}; hit rate "
              f"{_pct(final.per_dc[dc].hit_rate)}")


def _errors(stats) -> str:
    """``3 errors (timeout: 2, socket:timeout: 1)``: how many, and of which kinds."""
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(stats.errors.items()) if n)
    return f"{stats.error_count} errors" + (f" ({kinds})" if kinds else "")


def _ms(seconds) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.2f} ms"


def _pct(fraction) -> str:
    return "n/a" if fraction is None else f"{fraction:.1%}"


def _routers(run: ScenarioRun, dc: str) -> list[str]:
    return run.lab.node_names("router", dc)


def _traffic(run: ScenarioRun, **kwargs):
    from .traffic import Traffic
    routers = {dc: run.lab.router_addresses(dc) for dc in run.lab.dcs}
    settings = dict(keys=500, readers_per_dc=2, writes_per_sec=5.0, seed=7)
    settings.update(kwargs)
    traffic = Traffic(routers, **settings).start()
    run.say(f"traffic: {settings['readers_per_dc']} readers per DC over "
            f"{settings['keys']} keys, {settings['writes_per_sec']:g} writes+purges/s")
    return traffic


def _window(run: ScenarioRun, traffic, seconds: float, label: str):
    """Traffic stats over the next ``seconds`` (scaled), with a progress line."""
    seconds = run.seconds(seconds)
    before = traffic.snapshot()
    time.sleep(seconds)
    stats = traffic.snapshot() - before
    run.say(f"{label}: {stats.progress_line()}")
    return stats


def _integrity_keys(run: ScenarioRun, dc: str, shard: str, count: int = 200) -> list[str]:
    """Keys of this run that ``dc``'s routers send to ``shard``."""
    prefix = f"integrity:{os.getpid()}:{int(time.time() * 1000)}:"
    keys = [f"{prefix}{i}" for i in range(count * len(run.lab.node_names('server', dc)))]
    return [k for k in keys if run.lab.shard(k, dc) == shard][:count]


# -- scenarios ------------------------------------------------------------------------------------

@scenario("shard-down", "a main shard is killed; the gutter pool takes over with a short TTL, "
                        "no client errors after the TKO, keys come back with the shard")
def shard_down(run: ScenarioRun) -> None:
    lab = run.lab
    dc = lab.dcs[HOME]
    victim = lab.node_names("server", dc)[1]
    routers = _routers(run, dc)
    router = lab.router_addresses(dc)[0]
    keys = _integrity_keys(run, dc, victim, 50)
    others = _integrity_keys(run, dc, lab.node_names("server", dc)[0], 50)
    for key in keys + others:
        if _set(router, key, b"v1") != b"STORED\r\n":
            raise ScenarioFailed(f"could not store {key} through {router}")
    run.say(f"stored {len(keys)} keys on {victim} and {len(others)} on another shard")
    with _traffic(run) as traffic:
        _window(run, traffic, 2, "before")
        detect = _take_down(run, victim, "kill", routers)
        run.note("tko_detect_s", round(detect, 2))
        run.say(f"every {dc} router sees {victim} TKO after {detect:.2f}s")
        after = _window(run, traffic, 4, "after the TKO")
        home = after.per_dc[dc]
        run.note("errors_after_tko", home.error_count)
        run.note("hit_rate_after_tko", _pct(home.hit_rate))
        run.check("no client errors after the TKO", home.error_count == 0,
                  f"{_errors(home)} in {home.reads} reads in {dc}")
        run.check("no wrong values", after.total.wrong_values == 0,
                  f"{after.total.wrong_values} reads returned a value that never existed")
        lost = [k for k in keys if _get(router, k) is not None]
        kept = [k for k in others if _get(router, k) == b"v1"]
        run.check("other shards' keys intact", len(kept) == len(others),
                  f"{len(kept)}/{len(others)} keys on other shards still read v1")
        run.check("the dead shard's keys miss (the gutter starts empty)", not lost,
                  f"{len(lost)} of {len(keys)} returned a value")
        for key in keys:
            if _set(router, key, b"v2", 3600) != b"STORED\r\n":
                raise ScenarioFailed(f"set {key} failed while {victim} is TKO")
        served = sum(_get(router, k) == b"v2" for k in keys)
        ttls = _gutter_ttls(run, dc, keys)
        limit = lab.plan.topology["router"]["failover_exptime"]
        run.check("writes go to the gutter with a short TTL",
                  served == len(keys) and len(ttls) == len(keys) and max(ttls) <= limit,
                  f"{served}/{len(keys)} read back; {len(ttls)} found on gutter servers, "
                  f"TTL <= {max(ttls) if ttls else 'n/a'}s (set with 3600, failover_exptime "
                  f"{limit})")
        back = _bring_back(run, victim, routers)
        run.note("tko_clear_s", round(back, 2))
        run.say(f"probes cleared the TKO after {back:.2f}s")
        for key in keys[:20]:
            _set(router, key, b"v3")
        direct = lab.server_address(victim)
        home_again = sum(_get(direct, k) == b"v3" for k in keys[:20])
        run.check("traffic goes back to the shard", home_again == 20,
                  f"{home_again}/20 new writes found on {victim} itself")
        _no_errors_after(run, traffic, dc, "after recovery")


def _gutter_ttls(run: ScenarioRun, dc: str, keys: list[str]) -> list[int]:
    ttls = []
    for gutter in run.lab.node_names("gutter", dc):
        address = run.lab.server_address(gutter)
        for key in keys:
            reply = _call(address, b"mg %s t\r\n" % key.encode())
            match = re.match(rb"HD.* t(-?\d+)", reply)
            if match:
                ttls.append(int(match.group(1)))
    return ttls


@scenario("shard-hang", "a main shard stops answering: requests time out at the server "
                        "timeout, the shard goes soft TKO, then fails over fast")
def shard_hang(run: ScenarioRun) -> None:
    lab = run.lab
    dc = lab.dcs[HOME]
    victim = lab.node_names("server", dc)[2]
    routers = _routers(run, dc)
    with _traffic(run) as traffic:
        base = _window(run, traffic, 2, "before")
        detect = _take_down(run, victim, "hang", routers)
        run.note("soft_tko_after_s", round(detect, 2))
        states = [lab.suspect_servers(r)[victim] for r in routers]
        run.say(f"{victim} soft TKO after {detect:.2f}s: {'; '.join(states)}")
        # Requests sent just before the TKO still wait out the server timeout; the window
        # below is about requests sent once the routers hold the shard TKO.
        in_flight = lab.plan.topology["router"]["server_timeout_ms"] / 1000 + 0.1
        time.sleep(in_flight)
        timeouts = traffic.snapshot().per_dc[dc].errors
        timeout_errors = sum(n for kind, n in timeouts.items() if "timeout" in kind)
        run.note("timeouts_before_tko", timeout_errors)
        run.check("requests timed out before the TKO", timeout_errors > 0,
                  f"{timeout_errors} timeouts seen by clients (counted {in_flight:.2f}s after "
                  "the TKO, when the last request sent before it has timed out)")
        after = _window(run, traffic, 4, "while hung and TKO")
        home = after.per_dc[dc]
        run.note("p99_before", _ms(base.per_dc[dc].p99))
        run.note("p99_while_tko", _ms(home.p99))
        run.check("no client errors once TKO", home.error_count == 0,
                  f"{_errors(home)} in {home.reads} reads; p99 "
                  f"{_ms(home.p99)} (before the hang {_ms(base.per_dc[dc].p99)})")
        _bring_back(run, victim, routers)
        _no_errors_after(run, traffic, dc, "after recovery")


@scenario("dc-partition", "the WAN link between the DCs is cut: local traffic keeps working, "
                          "purges to the other DC are lost, stale values show after healing")
def dc_partition(run: ScenarioRun) -> None:
    lab = run.lab
    home, away = lab.dcs[HOME], lab.dcs[AWAY]
    # A 3 s hold-off (MediaWiki: 11 s) so a short partition outlasts it.
    holdoff = 3.0
    with _traffic(run, writes_per_sec=10.0, writer_dcs=[home], holdoff=holdoff) as traffic:
        run.say(f"writes and purges in {home} only; hold-off {holdoff:g}s")
        base = _window(run, traffic, 2, "before")
        run.check("no stale reads beyond the hold-off before the partition",
                  base.total.stale_beyond == 0, f"{base.total.stale_beyond} stale reads")
        run.say(lab.partition(home, away))
        during = _window(run, traffic, 2 * holdoff, "partitioned")
        local_errors = sum(during.per_dc[dc].reads_with_errors for dc in (home, away))
        run.check("local reads keep working in both DCs", local_errors == 0,
                  f"{local_errors} reads with errors; hit rate {home} "
                  f"{_pct(during.per_dc[home].hit_rate)}, {away} "
                  f"{_pct(during.per_dc[away].hit_rate)}")
        seen = lab.suspect_servers(_routers(run, home)[0])
        lost = [n for n in lab.node_names("server", away) if "status:tko" in seen.get(n, "")]
        run.check(f"{home}'s routers cannot reach {away} (purges lost)", bool(lost),
                  f"{home}-router sees {len(lost)} {away} servers down: {', '.join(lost)}")
        run.say(" ".join(lab.heal()) or "healed")
        healed = time.monotonic()
        run.wait_until(lambda: no_tko(lab, _routers(run, home)), 30,
                       f"{home}'s routers to probe {away}'s servers back")
        run.say(f"{home}'s routers reach {away} again after {time.monotonic() - healed:.1f}s "
                "(probes)")
        after = _window(run, traffic, 4, "after healing")
        stale = during.per_dc[away].stale_beyond + after.per_dc[away].stale_beyond
        run.note("stale_beyond_holdoff_in_" + away, stale)
        run.note("stale_beyond_after_healing", after.per_dc[away].stale_beyond)
        run.say(f"after healing {away} still serves {after.per_dc[away].stale_beyond} stale "
                f"reads: the lost purges are not replayed, values stay stale until their TTL")
        oldest = max(during.per_dc[away].max_stale_age, after.per_dc[away].max_stale_age)
        run.note("max_stale_age_s", round(oldest, 1))
        run.check(f"{away} served stale values (the purges never arrived)", stale > 0,
                  f"{stale} reads in {away} returned a value older than the hold-off allows; "
                  f"oldest {oldest:.1f}s")
        run.check(f"{home} never served stale beyond the hold-off",
                  during.per_dc[home].stale_beyond + after.per_dc[home].stale_beyond == 0,
                  f"{during.per_dc[home].stale_beyond + after.per_dc[home].stale_beyond} reads")


@scenario("purge-propagation", "a purge in one DC makes the other DC's cached value stale "
                               "within the hold-off")
def purge_propagation(run: ScenarioRun) -> None:
    from .wancache import WANCache
    lab = run.lab
    home, away = lab.dcs[HOME], lab.dcs[AWAY]
    writer = WANCache(lab.router_addresses(home)[0])
    reader = WANCache(lab.router_addresses(away)[0])
    truth: dict[str, int] = {}
    prefix = f"purge:{os.getpid()}:{int(time.time())}:"
    keys = [f"{prefix}{i}" for i in range(10)]
    try:
        for key in keys:
            truth[key] = 1
            reader.get_with_set(key, 300, lambda old, k=key: f"v{truth[k]}")
            first = reader.get_with_set(key, 300, lambda old, k=key: f"v{truth[k]}")
            if not first.hit:
                raise ScenarioFailed(f"{away} did not cache {key}")
        run.say(f"{len(keys)} keys cached in {away} at version 1")
        delays = []
        holdoff = writer.holdoff
        for key in keys:
            truth[key] = 2
            purged_at = time.monotonic()
            if not writer.delete(key):
                raise ScenarioFailed(f"purge of {key} through {home} failed: "
                                     f"{writer.last_error}")
            while True:
                value = reader.get_with_set(key, 300, lambda old, k=key: f"v{truth[k]}")
                if value.value == "v2":
                    delays.append(time.monotonic() - purged_at)
                    break
                if time.monotonic() - purged_at > holdoff + 2:
                    delays.append(float("inf"))
                    break
                time.sleep(0.01)
        worst = max(delays)
        run.note("max_propagation_ms", round(worst * 1000, 1))
        run.say(f"purges from {home} seen in {away}: median "
                f"{sorted(delays)[len(delays) // 2] * 1000:.1f} ms, worst {worst * 1000:.1f} ms")
        run.check(f"{away} stops serving the old value within the hold-off",
                  worst <= holdoff, f"worst {worst:.3f}s (hold-off {holdoff:g}s)")
        tombstoned = sum(writer.get(k).tombstoned for k in keys)
        run.check(f"the tombstone holds off writes in {home} too", tombstoned == len(keys),
                  f"{tombstoned}/{len(keys)} keys read as purged in {home}")
    finally:
        writer.close()
        reader.close()


@scenario("rolling-restart", "every main shard of a DC is restarted in turn under traffic; "
                             "each goes TKO, fails over, and comes back")
def rolling_restart(run: ScenarioRun) -> None:
    lab = run.lab
    dc = lab.dcs[HOME]
    routers = _routers(run, dc)
    with _traffic(run) as traffic:
        _window(run, traffic, 1, "before")
        start_stats = traffic.snapshot()
        for shard in lab.node_names("server", dc):
            _take_down(run, shard, "kill", routers)
            run.pause(0.5, f"{shard} down, its keys on the gutter")
            _bring_back(run, shard, routers)
        stats = traffic.snapshot() - start_stats
        home = stats.per_dc[dc]
        run.note("errors_during_restarts", home.error_count)
        run.note("hit_rate_during_restarts", _pct(home.hit_rate))
        run.check("every shard came back", all(_clear_for(run, s, routers)
                                               for s in lab.node_names("server", dc)),
                  "no router holds a server TKO after the restarts")
        run.check("no wrong values", stats.total.wrong_values == 0,
                  f"{stats.total.wrong_values} wrong values in {stats.total.reads} reads")
        # A kill resets the connection in flight: those few requests fail; the TKO then
        # sends everything else to the gutter.
        run.check("errors only while a kill is being noticed",
                  home.reads_with_errors <= 10 * len(lab.node_names("server", dc)),
                  f"{home.reads_with_errors} reads with errors over "
                  f"{len(lab.node_names('server', dc))} restarts ({home.reads} reads)")
        _no_errors_after(run, traffic, dc, "after the restarts")


# -- command line ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pymc lab scenario",
                                     description="Run the lab's failure scenarios.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the scenarios and what they show")
    runner = sub.add_parser("run", help="run scenarios (all when none is named)")
    runner.add_argument("names", nargs="*", metavar="NAME")
    runner.add_argument("--dir", default=".pymc-lab", help="the lab to use (default "
                        "./.pymc-lab); without a running lab there, one is started and stopped")
    runner.add_argument("--scale", type=bounded_number(0, 100, above_low=True), default=1.0,
                        help="multiply the scenario's waits (0.5 runs twice as fast)")
    runner.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.action == "list":
        for name, item in SCENARIOS.items():
            print(f"{name:18} {item.summary}")
        return 0
    names = args.names or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"pymc lab scenario: no scenario {', '.join(unknown)}; "
              "`pymc lab scenario list` shows them", file=sys.stderr)
        return 2
    results = run_in_lab(names, args.dir, args.scale)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    print()
    for result in results:
        numbers = ", ".join(f"{k}={v}" for k, v in result.numbers.items())
        print(f"{'PASS' if result.passed else 'FAIL'}  {result.name:18} {numbers}")
    return 0 if all(r.passed for r in results) else 1


def run_in_lab(names: list[str], lab_dir: str, scale: float = 1.0, out=print):
    """Run ``names`` in the lab at ``lab_dir``, or in a fresh one brought up for them."""
    from .runner import Lab, NoLab, is_compose_project
    own = None
    try:
        lab = Lab.attach(lab_dir)
        if not lab.running_nodes():
            raise NoLab(lab_dir)
    except NoLab:
        if is_compose_project(lab_dir):
            own = lab_dir
            out(f"the containers of {lab_dir} are not running; starting them for the "
                "scenario")
        else:
            own = tempfile.mkdtemp(prefix="pymc-lab-scenario-")
            out(f"no lab running in {lab_dir}; starting one in {own} for the scenario")
            lab = Lab.create(None, own, base_port=0)
        lab.up(progress=out)
    try:
        results = []
        for name in names:
            results.append(run_scenario(name, lab, out=out, scale=scale))
        return results
    finally:
        if own is not None:
            lab.down(progress=out)
            if own != lab_dir:  # the temporary lab's directory, not the user's project
                shutil.rmtree(own, ignore_errors=True)
