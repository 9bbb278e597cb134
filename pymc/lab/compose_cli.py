"""``pymc lab compose ...``: the lab in containers (see ``pymc.lab.compose`` for the project
and ``pymc.lab.containers`` for how faults act on it).

    pymc lab compose generate [--out DIR] [--topology FILE] [--subnet CIDR] [--host-port-base N]
    pymc lab compose build [--dir DIR] [--offline] [--base-image IMAGE]
    pymc lab compose up [--dir DIR] [--build] [--offline]
    pymc lab compose down [--dir DIR]

``--offline`` is for machines with no registry: it builds a Debian base image with
``compose/build-base-image.sh`` (mmdebstrap from the host's apt sources) and a wheelhouse with
``compose/build-wheelhouse.sh`` (on the host, which can reach PyPI or a mirror), so that
``docker build`` needs no network. Afterwards every ``pymc lab`` command works on the project
with ``--dir DIR``: ``status``, ``fail``, ``heal``, ``partition``, ``wan-latency``,
``scenario run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import compose
from .compose import SOURCE_ROOT
from .containers import ContainerLab, build_image, docker, run_script
from .runner import LabError, is_compose_project

DEFAULT_DIR = "compose"


def offline_base_image() -> str:
    """The tag compose/build-base-image.sh gives the host's Debian release."""
    codename = ""
    try:
        release = Path("/etc/os-release").read_text()
    except OSError:
        release = ""  # not Debian-like: the script says what it needs
    for line in release.splitlines():
        if line.startswith("VERSION_CODENAME="):
            codename = line.split("=", 1)[1].strip('"')
    return f"pymc-base:{codename or 'debian'}"


def build(offline: bool, base_image: str | None, image: str, progress=print) -> None:
    scripts = SOURCE_ROOT / "compose"
    if not (scripts / "Dockerfile").exists():
        raise LabError(f"no {scripts / 'Dockerfile'}: building images needs pymc's source tree "
                       "(git clone), not an installed package")
    if offline:
        base_image = base_image or offline_base_image()
        run_script(scripts / "build-base-image.sh", base_image, progress=progress)
        run_script(scripts / "build-wheelhouse.sh", base_image, progress=progress)
    try:
        build_image(SOURCE_ROOT, image, base_image, progress)
    except LabError as exc:
        if offline:
            raise
        raise LabError(f"{exc}\nwith no registry in reach (no python:3.12-slim), build from "
                       "a Debian base image and a wheelhouse instead: add --offline") from None
    progress(f"built {image}")


def _lab(directory: str, generate: bool) -> ContainerLab:
    if generate and not is_compose_project(directory):
        print(f"no Compose project in {directory}; generating the default one")
        if compose.main(["--out", directory]):
            raise LabError(f"could not generate a Compose project in {directory}")
    return ContainerLab.attach(directory)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "generate":
        return compose.main(args[1:])
    parser = argparse.ArgumentParser(prog="pymc lab compose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["generate", "build", "up", "down"])
    parser.add_argument("--dir", default=DEFAULT_DIR,
                        help=f"the Compose project directory (default ./{DEFAULT_DIR})")
    parser.add_argument("--build", action="store_true", help="up: build the image first")
    parser.add_argument("--offline", action="store_true", help="build from a Debian base "
                        "image and a wheelhouse made here (no registry needed)")
    parser.add_argument("--base-image", help="build on this image (default python:3.12-slim;"
                        " with --offline the mmdebstrap image)")
    parser.add_argument("--image", default=None, help="image tag (default $PYMC_IMAGE or "
                        "pymc:local)")
    options = parser.parse_args(args)
    if options.image:  # what the Compose file (${PYMC_IMAGE}) and ContainerLab.up run
        os.environ["PYMC_IMAGE"] = options.image
    try:
        lab = _lab(options.dir, generate=options.action != "down")
        image = lab.image()
        if options.action == "build" or options.action == "up" and (
                options.build or not docker("images", "-q", image).strip()):
            build(options.offline, options.base_image, image)
        if options.action == "up":
            lab.up(progress=print)
            for dc in lab.dcs:
                print(f"{dc} routers: {' '.join(lab.router_addresses(dc))}")
            print(f"\nnext: pymc lab status --dir {options.dir}; "
                  f"pymc lab scenario run shard-down --dir {options.dir}")
        elif options.action == "down":
            removed = lab.down(progress=print)
            print(f"removed {len(removed)} containers and the project's networks")
    except (LabError, compose.ComposeError) as exc:
        print(f"pymc lab compose {options.action}: {exc}", file=sys.stderr)
        return 1
    return 0
