"""``stats`` replies both ways: ``format_stats`` writes one (pymc-server and pymc-router),
``stat_values`` / ``parse_stats`` read one (pymc.testing, the lab, ``pymc top``, the tests) from
pymc-server, a router or any memcached, so that every reader skips the same lines (END, an
error line) and types the same values.
"""

from __future__ import annotations


def format_stats(pairs) -> bytes:
    """``STAT name value`` lines for (name, value) pairs, then ``END``."""
    parts = [b"STAT %s %s\r\n" % (str(name).encode(), str(value).encode())
             for name, value in pairs]
    parts.append(b"END\r\n")
    return b"".join(parts)


def stat_values(reply: bytes) -> dict[str, str]:
    """The ``STAT name value`` lines of ``reply`` as name -> value text; other lines are
    skipped."""
    values: dict[str, str] = {}
    for line in reply.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            values[parts[1]] = parts[2]
    return values


def parse_stats(reply: bytes) -> dict[str, int | str]:
    """``stat_values`` with whole numbers as ints (``curr_items`` -> 3, ``version`` stays
    text)."""
    return {name: int(value) if _is_integer(value) else value
            for name, value in stat_values(reply).items()}


def _is_integer(text: str) -> bool:
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()
