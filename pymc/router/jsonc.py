"""mcrouter's config JSON: comments (``//`` and ``/* */``) and trailing commas are allowed,
as folly's parser with stripComments and allow_trailing_comma reads them."""

from __future__ import annotations

import json
import math


class ConfigError(ValueError):
    """A config that cannot be used; the message says where and why."""


def strip_comments(text: str) -> str:
    """Drop comments and trailing commas outside strings; line numbers stay the same."""
    out: list[str] = []
    i, n = 0, len(text)
    pending_comma = -1  # index in out of a comma that a closing bracket would make trailing
    while i < n:
        ch = text[i]
        if ch == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i:end + 1])
            pending_comma = -1
            i = end + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ConfigError("unterminated /* comment")
            out.append("\n" * text.count("\n", i, end))
            i = end + 2
        else:
            if ch in "}]" and pending_comma >= 0:
                out[pending_comma] = " "
            if ch == ",":
                pending_comma = len(out)
            elif not ch.isspace():
                pending_comma = -1
            out.append(ch)
            i += 1
    return "".join(out)


def loads(text: str):
    try:
        return json.loads(strip_comments(text), parse_constant=_no_constant,
                          parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") \
            from None
    except RecursionError:
        raise ConfigError("invalid JSON: nested too deeply") from None


# NaN and infinities are not JSON, and folly refuses them too; Python's json would let them
# through to timeouts and weights, to fail there as arithmetic errors.
def _no_constant(name: str):
    raise ConfigError(f"invalid JSON: {name} (JSON has no NaN or infinities)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ConfigError(f"invalid JSON: {text} is out of range")
    return value
