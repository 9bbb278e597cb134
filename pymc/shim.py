"""``pymc shim DIR``: put pymc-server where tools look for a ``memcached`` binary.

Writes ``DIR/memcached``, a two-line shell script that execs this Python's
``-m pymc.server "$@"``. With ``PATH=DIR:$PATH`` anything that spawns ``memcached``
(pifpaf, pytest-services, pytest-xprocess starters, a Makefile) gets pymc-server with the
same flags, the same ``-vv`` start-up lines and the same PID (``exec``: signals go straight
to the server).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

MARKER = "# written by `pymc shim`"


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def needs_pythonpath(python: str) -> str | None:
    """The directory holding our ``pymc`` package when ``python`` would not find it on its
    own (running from a source tree without an install), else None."""
    import pymc
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(pymc.__file__)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        found = subprocess.run(
            [python, "-c", "import pymc, os; print(os.path.abspath(pymc.__file__))"],
            env=env, cwd="/", capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    return None if found == os.path.abspath(pymc.__file__) else package_parent


def script_text(python: str, pythonpath: str | None) -> str:
    lines = ["#!/bin/sh", f"{MARKER}: memcached's command line, served by pymc-server"]
    if pythonpath:
        lines.append(f'PYTHONPATH={shell_quote(pythonpath)}"${{PYTHONPATH:+:$PYTHONPATH}}"')
        lines.append("export PYTHONPATH")
    lines.append(f'exec {shell_quote(python)} -m pymc.server "$@"')
    return "\n".join(lines) + "\n"


def write_shim(directory: str, name: str = "memcached", force: bool = False,
               python: str | None = None) -> str:
    """Write DIR/NAME and return its path. Refuses to replace a file that is not a shim of
    ours unless ``force``."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    if os.path.lexists(path) and not force:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                ours = MARKER in handle.read(4096)
        except OSError:
            ours = False
        if not ours:
            raise FileExistsError(f"{path} exists and is not a pymc shim; use --force to "
                                  "replace it")
    python = python or sys.executable
    text = script_text(python, needs_pythonpath(python))
    temporary = path + ".tmp-%d" % os.getpid()
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o755)
    os.replace(temporary, path)
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="pymc shim",
        description="Write DIR/memcached, a script that runs pymc-server with memcached's "
                    "flags, so that tools which start `memcached` start pymc-server when "
                    "DIR is first on PATH.")
    parser.add_argument("directory", metavar="DIR")
    parser.add_argument("--name", default="memcached",
                        help="file name to write (default: memcached)")
    parser.add_argument("--force", action="store_true",
                        help="replace DIR/NAME even if it is not a pymc shim")
    parser.add_argument("--python", help="interpreter to run (default: this one, %s)"
                        % sys.executable)
    args = parser.parse_args(argv)
    if args.python is not None and shutil.which(args.python) is None:
        parser.error(f"--python {args.python}: no such interpreter (not found or not executable)")
    try:
        path = write_shim(args.directory, args.name, args.force, args.python)
    except OSError as exc:
        print(f"pymc shim: {exc}", file=sys.stderr)
        return 1
    directory = os.path.dirname(os.path.abspath(path))
    print(f"wrote {path}: `{args.name} ARGS` now runs `{args.python or sys.executable} "
          f"-m pymc.server ARGS`\n"
          f"use it with:  export PATH={shell_quote(directory)}:$PATH   "
          f"(check: {args.name} -V)")
    return 0
