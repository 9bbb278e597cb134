"""Lab faults as data: what each kind means, how a command line names one, and which mode a
fault-proxy link must be in given the faults and partitions in force.

Kinds (``Lab.fail`` applies them; ``Lab.heal`` undoes them):

=========  =====================  ==========================================================
kind       nodes                  effect
=========  =====================  ==========================================================
kill       any                    SIGKILL; a server's links then refuse connections (a dead
                                  memcached's port). heal: started again on the same port
                                  (a server comes back empty)
hang       server, gutter         its links accept but forward nothing either way: requests
                                  time out, routers soft-TKO it; heal: links forward again
hang       router, proxy          SIGSTOP (heal: SIGCONT)
freeze     any                    SIGSTOP (heal: SIGCONT): the process answers nobody,
                                  not even direct clients or ``status``
slow MS    server, gutter         MS ms added each way on every link to the node
loss PCT   server, gutter         PCT % of new connections, and of data chunks, reset their
                                  connection (user space cannot drop single TCP segments)
=========  =====================  ==========================================================

``wan_latency MS`` (``pymc lab wan-latency MS``): MS ms added each way on every WAN link, on
top of a node's own ``slow``.

``partition a b``: the WAN links between DCs a and b refuse connections both ways (a's routers
cannot reach b's servers and b's routers cannot reach a's); local links keep working. A
partition outranks a node fault on a WAN link; when it heals the node fault applies again.
"""

from __future__ import annotations

KINDS = ("kill", "hang", "freeze", "slow", "loss")
# kind: (argument's name, largest value); `slow` beyond an hour is a `hang` in disguise. The
# fault proxy takes the same limits.
NEEDS_NUMBER = {"slow": ("MS", 3_600_000.0), "loss": ("PCT", 100.0)}
USAGE = "kill | hang | freeze | slow MS | loss PCT"


class FaultError(ValueError):
    pass


def parse(words: list[str]) -> tuple[str, float | None]:
    """``["slow", "100"]`` → ("slow", 100.0); FaultError with the usage otherwise."""
    if not words:
        raise FaultError(f"which fault? expected {USAGE}")
    kind, args = words[0].lower(), words[1:]
    if kind not in KINDS:
        raise FaultError(f"unknown fault {kind!r}; expected {USAGE}")
    if kind in NEEDS_NUMBER:
        name = NEEDS_NUMBER[kind][0]
        if len(args) != 1:
            raise FaultError(f"{kind} takes one number: {kind} {name}")
        try:
            value = float(args[0])
        except ValueError:
            raise FaultError(f"{kind} {args[0]!r}: {name} must be a number") from None
        check(kind, value)
        return kind, value
    if args:
        raise FaultError(f"{kind} takes no argument")
    return kind, None


def check(kind: str, arg: float | None) -> None:
    if kind not in KINDS:
        raise FaultError(f"unknown fault {kind!r}; expected {USAGE}")
    if kind in NEEDS_NUMBER:
        name, highest = NEEDS_NUMBER[kind]
        if arg is None:
            raise FaultError(f"{kind} needs a number: {kind} {name}")
        if not 0 <= arg <= highest:
            raise FaultError(f"{kind} {arg:g}: {name} must be from 0 to {highest:g}")
    elif arg is not None:
        raise FaultError(f"{kind} takes no argument")


def describe(fault: dict | None) -> str | None:
    if not fault:
        return None
    return fault["kind"] + ("" if fault["arg"] is None else " %g" % fault["arg"])


def link_mode(server_dc: str, client_dc: str, fault: dict | None,
              partitions: list[list[str]], wan_latency_ms: float = 0) -> str:
    """The fault-proxy command for one link (server in server_dc, used by client_dc).
    ``wan_latency_ms`` adds to a WAN link's delay; refuse, hang and loss outrank it."""
    wan = server_dc != client_dc
    if wan and sorted((server_dc, client_dc)) in partitions:
        return "refuse"
    delay = wan_latency_ms if wan else 0
    kind, arg = (fault["kind"], fault["arg"]) if fault else ("pass", None)
    if kind == "kill":
        return "refuse"
    if kind == "loss":
        return f"loss {arg:g}"
    if kind == "hang":
        return "hang"
    if kind == "slow":
        delay += arg
    return f"slow {delay:g}" if delay else "pass"  # freeze: the link itself is fine
