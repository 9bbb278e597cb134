"""Container health checks: exit 0 when the node answers as it should, 1 (with the reason on
stderr) when it does not.

    python -m pymc.lab.health server 127.0.0.1:11211        # `version` answers VERSION
    python -m pymc.lab.health router 127.0.0.1:4442 FILE    # the live config is FILE's
    python -m pymc.lab.health proxy 127.0.0.1:7000          # the control port answers status

The router check is Wikimedia's: ``get __mcrouter__.config_md5_digest`` must equal the md5 of
the config file, so a router still running an old or rejected config is unhealthy.
"""

from __future__ import annotations

import hashlib
import sys

from .wire import ask

TIMEOUT = 1.5


def check_server(address: str, timeout: float = TIMEOUT) -> str:
    reply = ask(address, b"version\r\n", lambda r: r.endswith(b"\r\n"), timeout)
    return "" if reply.startswith(b"VERSION ") else f"version answered {reply[:80]!r}"


def check_router(address: str, config_file: str) -> str:
    with open(config_file, "rb") as handle:
        expected = hashlib.md5(handle.read()).hexdigest()
    reply = ask(address, b"get __mcrouter__.config_md5_digest\r\n",
                lambda r: r.endswith(b"END\r\n") or r.startswith((b"SERVER_ERROR",
                                                                 b"CLIENT_ERROR")),
                TIMEOUT)
    lines = reply.split(b"\r\n")
    if not reply.startswith(b"VALUE") or len(lines) < 2:
        return f"config_md5_digest answered {reply[:80]!r}"
    live = lines[1].decode(errors="replace")
    return "" if live == expected else f"live config md5 {live} != {config_file} md5 {expected}"


def check_proxy(address: str, timeout: float = TIMEOUT) -> str:
    reply = ask(address, b"status\n", lambda r: r.endswith(b"\n"), timeout)
    return "" if reply.startswith(b"{") else f"status answered {reply[:80]!r}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    checks = {"server": (check_server, 2), "router": (check_router, 3),
              "proxy": (check_proxy, 2)}
    if not args or args[0] not in checks or len(args) != checks[args[0]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        problem = checks[args[0]][0](*args[1:])
    except (OSError, ValueError) as exc:  # ValueError: a bad address
        problem = f"{args[1]}: {exc}"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
