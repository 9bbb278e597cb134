"""Expansion errors. :class:`_Error` collects the JSON path and the boundaries (macro bodies,
consts, vars) it unwinds through; :func:`_describe` renders them in mcrouter's form, e.g.
``route.children[2]: in macro 'm': Macro: 'foo' not found``.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class _Error(Exception):
    """An expansion failure. ``path`` collects the JSON path as the error unwinds; ``frames``
    the boundaries (macro bodies, consts, vars) it crossed, outermost first."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.path: list[str | int] = []
        self.frames: list[str] = []

    def at(self, segment: str | int) -> "_Error":
        self.path.insert(0, segment)
        return self

    def inside(self, label: str) -> "_Error":
        """Close the path so far under a boundary such as a macro body or a const."""
        self.frames.insert(0, f"{label} at {_format_path(self.path)}" if self.path else label)
        self.path = []
        return self


def _fail(message: str) -> Any:
    raise _Error(message)


def _describe(e: _Error) -> str:
    parts = [_format_path(e.path)] if e.path else []
    for frame, run in itertools.groupby(e.frames):  # a recursive macro repeats one frame
        count = len(list(run))
        parts.append(f"{frame} (x{count})" if count > 1 else frame)
    return ": ".join(parts + [e.message])


def _format_path(path: list[str | int]) -> str:
    out: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif _IDENT.match(seg):
            out.append(f".{seg}" if out else seg)
        else:
            out.append(f"[{json.dumps(seg)}]")
    return "".join(out)
