"""``pymc``: one command whose subcommands are the project's programs (``pymc server ...``)."""

from __future__ import annotations

import importlib
import sys

from . import __version__

USAGE = """usage: pymc <command> [args...]

commands:
  server    a memcached 1.6 compatible server (same as pymc-server; -h for its flags)
  router    an mcrouter compatible router (same as pymc-router; --help for its flags)
  lab       a two-DC lab of servers and routers with fault injection (pymc lab help)
  top       live stats of a server or router: pymc top HOST:PORT [--interval S] [--once]
  shim      write DIR/memcached that runs pymc-server: pymc shim DIR; PATH=DIR:$PATH
  version   print pymc's version
"""
#: subcommand -> the module whose main(argv) runs it
PROGRAMS = {"server": ".server.cli", "router": ".router.cli", "lab": ".lab.cli", "top": ".top",
            "shim": ".shim"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in PROGRAMS:
        # Imported on use: `pymc top` should not pay for gevent or the router.
        return importlib.import_module(PROGRAMS[command], __package__).main(rest)
    if command in ("version", "--version", "-V"):
        print(f"pymc {__version__}")
        return 0
    sys.stderr.write(f"pymc: unknown command {command!r}\n\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
