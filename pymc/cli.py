"""``pymc``: one command whose subcommands are the project's programs (``pymc server ...``)."""

from __future__ import annotations

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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "server":
        from .server.cli import main as server_main
        return server_main(rest)
    if command == "router":
        from .router.cli import main as router_main
        return router_main(rest)
    if command == "lab":
        from .lab.cli import main as lab_main
        return lab_main(rest)
    if command == "top":
        from .top import main as top_main
        return top_main(rest)
    if command == "shim":
        from .shim import main as shim_main
        return shim_main(rest)
    if command in ("version", "--version", "-V"):
        print(f"pymc {__version__}")
        return 0
    sys.stderr.write(f"pymc: unknown command {command!r}\n\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
