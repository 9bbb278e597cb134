"""Text syntax: splitting a call ``"@name(a, b)"`` into its name and arguments (top-level
commas, nested parentheses, ``\\`` escapes) and ``%name%`` substitution in strings.
"""

from __future__ import annotations

from typing import Callable

from .errors import _fail
from .values import _MISSING, _SPACE, Json


def _find_unescaped(s: str, ch: str, end: int | None = None) -> int:
    end = len(s) if end is None else end
    if "\\" not in s:
        return s.find(ch, 0, end)
    i = 0
    while i < end:
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == ch:
            return i
        i += 1
    return -1


def _unescape_until(s: str, stop: str) -> tuple[int, str]:
    """Drop backslashes (keeping the escaped character) up to the first unescaped ``stop``;
    return its index (-1 if none, or if the string ends in a lone backslash) and the text."""
    if "\\" not in s:
        pos = s.find(stop)
        return pos, s if pos < 0 else s[:pos]
    out: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            if i + 1 == len(s):
                return -1, "".join(out)
            out.append(s[i + 1])
            i += 2
            continue
        if ch == stop:
            return i, "".join(out)
        out.append(ch)
        i += 1
    return -1, "".join(out)


def _matching_paren(s: str, i: int) -> int:
    depth = 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        depth += (s[i] == "(") - (s[i] == ")")
        if depth == 0:
            return i
        i += 1
    return -1


def _trim(s: str) -> str:
    """Strip whitespace, but keep a trailing space escaped by an odd number of backslashes."""
    s = s.lstrip(_SPACE)
    while s and s[-1] in _SPACE:
        slashes = len(s) - 1 - len(s[:-1].rstrip("\\"))
        if slashes:
            return s[:-1] if slashes % 2 == 0 else s
        s = s[:-1]
    return s


def _split_args(s: str) -> list[str]:
    """Arguments of a call; ``@m()`` has one empty argument, as in mcrouter."""
    args: list[str] = []
    while True:
        if not s:
            args.append("")
            return args
        comma = _find_unescaped(s, ",")
        if comma < 0:
            args.append(_trim(s))
            return args
        opened = _find_unescaped(s, "(", comma)
        if opened >= 0:  # the first argument is itself a call: skip to its closing bracket
            closing = _matching_paren(s, opened)
            if closing < 0:
                _fail(f"Brackets do not match: {s}")
            if closing == len(s) - 1:
                args.append(_trim(s))
                return args
            comma = s.find(",", closing + 1)
            if comma < 0:
                _fail("No comma after closing bracket")
        args.append(_trim(s[:comma]))
        s = s[comma + 1:]


def _parse_call(s: str) -> tuple[str, list[str]]:
    """``"@name(a, b)"`` → the name's text (which may still hold ``%var%``) and the raw
    arguments; ``"@name"`` has none."""
    opened = _find_unescaped(s, "(")
    if opened < 0:
        return s[1:], []
    if not s.endswith(")"):
        _fail(f"No closing bracket for call '{s}'")
    return s[1:opened], _split_args(s[opened + 1:-1])


def _substitute(s: str, lookup: Callable[[str], Json]) -> Json:
    """Replace %name% (``lookup(name)``, ``_MISSING`` if undefined) and drop escaping
    backslashes. A string that is exactly one %name% (after any empty text) yields that value
    with its own type."""
    if "%" not in s and "\\" not in s:
        return s
    out: list[str] = []
    rest = s
    while rest:
        pos, text = _unescape_until(rest, "%")
        out.append(text)
        if pos < 0:
            break
        rest = rest[pos + 1:]
        end, name = _unescape_until(rest, "%")
        if end < 0:
            _fail(f"Odd number of percent signs in string around '{rest}'")
        value = lookup(name)
        if value is _MISSING:
            _fail(f"Param in string: '{name}' not found")
        if end == len(rest) - 1 and not any(out):
            return value
        if not isinstance(value, str):
            _fail(f"Param in string '{name}' is not a string")
        out.append(value)
        rest = rest[end + 1:]
    return "".join(out)
