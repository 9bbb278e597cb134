"""``pymc lab ...``: bring a two-DC lab up, look at it, break it, heal it, take it down."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from . import faults
from .runner import DEFAULT_DIR, Lab, LabError
from .topology import TopologyError
from .wire import parse_address

USAGE = """usage: pymc lab <command> [--dir DIR] [args...]

commands:
  up [--topology FILE] [--base-port N] [--foreground]   start the lab (default topology:
                                  eqiad + codfw, 4 shards + 2 gutters + 2 routers each)
  status                          every process: address, up/down, faults, TKO, items, hit rate
  down                            stop every process of the lab
  fail NODE kill|hang|freeze|slow MS|loss PCT     inject a fault (see `pydoc pymc.lab.faults`)
  partition DC DC                 cut the WAN links between two DCs
  wan-latency MS                  add MS ms each way on every WAN link (0: none)
  heal [NODE|DC]                  undo a node's faults, a DC's partitions, or (no argument) all
  traffic ...                     MediaWiki-like WANObjectCache traffic (pymc.lab.traffic)
  scenario list|run NAME          scripted failure scenarios (pymc.lab.scenarios)
  compose generate|build|up|down  the same lab in containers (pymc.lab.compose_cli); then
                                  every command above works with --dir of the project

--dir DIR (default ./.pymc-lab) names the lab; every command takes it.
"""


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"pymc lab {prog}")
    parser.add_argument("--dir", default=DEFAULT_DIR,
                        help=f"the lab directory (default {DEFAULT_DIR})")
    return parser


def _dir_flag(lab_dir: str) -> str:
    return "" if lab_dir == DEFAULT_DIR else f" --dir {lab_dir}"


def cmd_up(argv: list[str]) -> int:
    parser = _parser("up")
    parser.add_argument("--topology", metavar="FILE", help="a topology JSON file "
                        "(format: `pydoc pymc.lab.topology`)")
    parser.add_argument("--base-port", type=int, default=None, metavar="N",
                        help="first port (default from the topology: 11500); 0: any free ports")
    parser.add_argument("--foreground", action="store_true",
                        help="stay attached; Ctrl-C brings the lab down")
    args = parser.parse_args(argv)
    lab = Lab.create(args.topology, args.dir, args.base_port)
    lab.up(progress=print)
    flag = _dir_flag(args.dir)
    routers = {dc: lab.router_addresses(dc) for dc in lab.dcs}
    first_dc = lab.dcs[0]
    host, port = parse_address(routers[first_dc][0])
    print(f"""
configs:  {lab.dir / 'configs'}  (mcrouter config per DC: {', '.join(f'{dc}-mcrouter.json' for dc in lab.dcs)})
logs:     {lab.dir / 'logs'}
routers:  {'; '.join(f"{dc} {' '.join(addrs)}" for dc, addrs in routers.items())}

try:
  printf 'set hello 0 0 5\\r\\nworld\\r\\nget hello\\r\\n' | nc -q1 {host} {port}
  pymc lab status{flag}
  pymc lab fail {first_dc}-mc1 kill{flag}    # then status: routers TKO it, the gutter takes over
  pymc lab heal{flag}
  pymc lab down{flag}""")
    if not args.foreground:
        return 0
    print("\nrunning in the foreground; Ctrl-C brings the lab down")
    stop: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda number, frame: stop.append(number))
    while not stop:
        time.sleep(0.2)
    print("\nbringing the lab down")
    lab.down(progress=print)
    return 0


def cmd_status(argv: list[str]) -> int:
    args = _parser("status").parse_args(argv)
    from .status import table
    lab = Lab.attach(args.dir)
    rows = lab.status()
    if all(row["process"] == "dead" for row in rows):
        print(f"the lab in {args.dir} is not running; start it with "
              f"`pymc lab up{_dir_flag(args.dir)}`")
        return 1
    print(table(lab, rows))
    return 0


def cmd_down(argv: list[str]) -> int:
    args = _parser("down").parse_args(argv)
    lab = Lab.attach(args.dir)
    stopped = lab.down(progress=print)
    print(f"stopped {len(stopped)} processes" if stopped else
          f"nothing was running in {args.dir}")
    return 0


def cmd_fail(argv: list[str]) -> int:
    parser = _parser("fail")
    parser.add_argument("node")
    parser.add_argument("fault", nargs="+", metavar="KIND [ARG]",
                        help=faults.USAGE)
    args = parser.parse_args(argv)
    kind, arg = faults.parse(args.fault)
    print(Lab.attach(args.dir).fail(args.node, kind, arg))
    return 0


def cmd_partition(argv: list[str]) -> int:
    parser = _parser("partition")
    parser.add_argument("dc_a")
    parser.add_argument("dc_b")
    args = parser.parse_args(argv)
    print(Lab.attach(args.dir).partition(args.dc_a, args.dc_b))
    return 0


def cmd_wan_latency(argv: list[str]) -> int:
    parser = _parser("wan-latency")
    parser.add_argument("ms", type=float, help="milliseconds each way (0 removes it)")
    args = parser.parse_args(argv)
    print(Lab.attach(args.dir).wan_latency(args.ms))
    return 0


def cmd_heal(argv: list[str]) -> int:
    parser = _parser("heal")
    parser.add_argument("node", nargs="?", help="a node, a DC (its partitions) or nothing (all)")
    args = parser.parse_args(argv)
    done = Lab.attach(args.dir).heal(args.node)
    print("\n".join(done) if done else "nothing to heal")
    return 0


def _with_routers(argv: list[str]) -> list[str]:
    """``traffic`` without --router: the routers of the lab in --dir (--dir removed)."""
    parser = argparse.ArgumentParser(prog="pymc lab traffic", add_help=False,
                                     allow_abbrev=False)
    parser.add_argument("--dir", default=DEFAULT_DIR)
    known, argv = parser.parse_known_args(argv)
    if any(a in ("-h", "--help") or a.startswith("--router") for a in argv):
        return argv
    lab = Lab.attach(known.dir)
    if not lab.running_nodes():
        raise LabError(f"the lab in {known.dir} is not running; start it with "
                       f"`pymc lab up{_dir_flag(known.dir)}` (or pass --router DC=HOST:PORT)")
    for dc in lab.dcs:
        argv += ["--router", f"{dc}=" + ",".join(lab.router_addresses(dc))]
    return argv


def cmd_traffic(argv: list[str]) -> int:
    from .traffic import main as traffic
    return traffic(_with_routers(argv))


def cmd_scenario(argv: list[str]) -> int:
    from .scenarios import main as scenarios
    return scenarios(argv)


def cmd_compose(argv: list[str]) -> int:
    from .compose_cli import main as compose
    return compose(argv)


COMMANDS = {"up": cmd_up, "status": cmd_status, "down": cmd_down, "fail": cmd_fail,
            "partition": cmd_partition, "heal": cmd_heal, "wan-latency": cmd_wan_latency,
            "traffic": cmd_traffic, "scenario": cmd_scenario, "scenarios": cmd_scenario,
            "compose": cmd_compose}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    handler = COMMANDS.get(command)
    if handler is None:
        sys.stderr.write(f"pymc lab: unknown command {command!r}\n\n{USAGE}")
        return 2
    try:
        return handler(rest)
    # OSError: a --dir that cannot be a directory, a node that hung up mid-command, ...
    except (LabError, TopologyError, faults.FaultError, OSError) as exc:
        print(f"pymc lab {command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
