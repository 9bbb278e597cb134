"""What every lab scenario is made of: narration with timestamps, waiting for a condition,
checks with the numbers behind them, and a PASS/FAIL verdict.

A scenario is a function ``(run: ScenarioRun) -> None`` registered with ``@scenario(name,
summary)``; it talks to ``run.lab`` (a running pymc.lab.runner.Lab), starts traffic, injects
faults, and calls ``run.check(...)``. ``run.scale`` shrinks every wait (tests use short
scenarios; people watching use 1.0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class ScenarioResult:
    name: str
    checks: list[Check] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.checks) and all(c.passed for c in self.checks)

    def as_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "error": self.error,
                "checks": [vars(c) for c in self.checks], "numbers": self.numbers}


@dataclass
class Scenario:
    name: str
    summary: str
    body: Callable[["ScenarioRun"], None]


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, summary: str):
    def register(body):
        SCENARIOS[name] = Scenario(name, summary, body)
        return body
    return register


class ScenarioFailed(Exception):
    """A step could not be carried out (as opposed to a check that failed)."""


class ScenarioRun:
    def __init__(self, lab, name: str, out: Callable[[str], None] = print,
                 scale: float = 1.0) -> None:
        self.lab = lab
        self.out = out
        self.scale = scale
        self.result = ScenarioResult(name)
        self.started = time.monotonic()

    # -- narration ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.out(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    def note(self, name: str, value) -> None:
        """A number worth keeping in the result (shown in the summary)."""
        self.result.numbers[name] = value

    def check(self, name: str, passed: bool, detail: str) -> bool:
        self.result.checks.append(Check(name, bool(passed), detail))
        self.say(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
        return bool(passed)

    # -- time -----------------------------------------------------------------------------------

    def seconds(self, value: float) -> float:
        return value * self.scale

    def pause(self, seconds: float, why: str = "") -> None:
        seconds = self.seconds(seconds)
        if why:
            self.say(f"{why} ({seconds:.1f}s)")
        time.sleep(seconds)

    def wait_until(self, predicate: Callable[[], object], timeout: float, what: str,
                   interval: float = 0.1):
        """``predicate()``'s first true value; ScenarioFailed after ``timeout`` seconds (not
        scaled: timeouts are about the machine, not the story)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)


def no_tko(lab, routers: list[str]) -> bool:
    """None of ``routers`` holds any server TKO. (A server can stay "suspect" — a timeout or
    two and no good reply since, because no request went there after the traffic stopped —
    as in mcrouter; that is not a TKO.)"""
    return not any("status:tko" in state for router in routers
                   for state in lab.suspect_servers(router).values())


def run_scenario(name: str, lab, out: Callable[[str], None] = print,
                 scale: float = 1.0) -> ScenarioResult:
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise KeyError(f"no scenario {name!r}; `pymc lab scenario list` shows them")
    run = ScenarioRun(lab, name, out, scale)
    run.say(f"scenario {name}: {scenario.summary}")
    try:
        scenario.body(run)
    except ScenarioFailed as exc:
        run.result.error = str(exc)
        run.say(f"ERROR {exc}")
    finally:
        try:
            lab.heal()
            # so that the next scenario starts clean
            run.wait_until(lambda: no_tko(lab, lab.node_names("router")), 30,
                           "every router to take every server back")
        except Exception as exc:  # noqa: BLE001 - the verdict still matters more
            run.say(f"warning: the lab did not settle after the scenario: {exc}")
    result = run.result
    run.say(f"{'PASS' if result.passed else 'FAIL'}  {name} "
            f"({sum(c.passed for c in result.checks)}/{len(result.checks)} checks)")
    return result
