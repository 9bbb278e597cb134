"""Random meta (and classic) command sequences sent in lockstep to memcached 1.6.18 and to
pymc-server: every reply and the counters must be identical.

Generated commands mix valid and broken flags, tokens, modes, lengths and base64 keys. Left out
on purpose: behaviour we take from newer protocol.txt (ms s, ms N, mg C, E, md x), and TTLs that
could expire between the two servers' clock ticks. Numbers derived from the clock (t, l, la,
exp) are compared with one second of slack, and "fetched" marks modulo a memcached race.
"""

import random
import re
import shutil
import subprocess

import pytest

from pymc.protocol.stats import stat_values
from tests.conftest import Client, ServerProcess

pytestmark = pytest.mark.integration

KEYS = [b"a", b"b", b"c", b"AGsx", b"YQ==", b"x y"]  # base64 and not; "x y" puts y in flags
FLAG_CHARS = list("bNTRlOPLkstcfvhuqFCMJDI") + ["!", "m", "S", "Z", "\xff"]
TTLS = ["", "0", "-1", "30", "100", "abc", "2592001", "99999999999"]
COUNTERS = ("cmd_get get_hits get_misses cmd_touch touch_hits touch_misses cmd_set delete_hits "
            "delete_misses incr_hits incr_misses decr_hits decr_misses cas_hits cas_misses "
            "cas_badval cmd_meta store_too_large").split()


def memcached_1_6_18() -> str | None:
    path = shutil.which("memcached")
    if not path:
        return None
    version = subprocess.run([path, "-V"], capture_output=True, text=True).stdout
    return path if version.strip() == "memcached 1.6.18" else None


def flag(rng: random.Random) -> str:
    f = rng.choice(FLAG_CHARS)
    choices = {
        "N": TTLS, "T": TTLS,
        # R thresholds far from the TTLs above: a clock tick between the two servers must
        # not decide a win.
        "R": ["", "0", "-1", "10", "1000", "abc", "2592001", "99999999999"],
        "C": ["", "0", "1", "2", "3", "5", "10", "99999", "-1", "x"],
        "F": ["", "0", "42", "4294967296", "-1", "z"],
        "M": ["", "E", "A", "P", "R", "S", "I", "+", "D", "-", "X", "EE"],
        "J": ["", "0", "5", "18446744073709551615", "18446744073709551616", "q"],
        "D": ["", "0", "5", "18446744073709551615", "18446744073709551616", "q"],
        "O": ["", "1", "abc", "o" * 31, "o" * 40],
        "P": ["", "path"], "L": ["", "path"],
    }
    return f + rng.choice(choices[f]) if f in choices else f


def command(rng: random.Random) -> bytes:
    cm = rng.choice(["mg"] * 5 + ["ms"] * 4 + ["md"] * 2 + ["ma"] * 3 + ["me", "mn", "classic"])
    key = rng.choice(KEYS)
    flags = [flag(rng) for _ in range(rng.choice([0, 1, 2, 3, 4, 6]))]
    if rng.random() < 0.3:
        flags = list(dict.fromkeys(flags))
    if cm == "ms":
        flags = [f for f in flags if f != "s" and not f.startswith("N")]
    if cm == "mg":
        flags = [f for f in flags if not f.startswith("C")]
    if cm == "ma":  # see _FETCHED_RACE: a replaced item also ignores ma's T
        flags = [f for f in flags if not f.startswith("T")]
    line = " ".join(flags).encode("latin1")
    if cm == "classic":
        return rng.choice([
            b"set %s 0 %d 2\r\n10\r\n" % (key, rng.choice([0, 100])), b"get %s\r\n" % key,
            b"incr %s 1\r\n" % key, b"delete %s\r\n" % key, b"gets %s\r\n" % key,
            b"append %s 0 0 1\r\n7\r\n" % key, b"prepend %s 0 0 1\r\n3\r\n" % key,
            b"gat 50 %s\r\n" % key, b"touch %s 0\r\n" % key, b"decr %s 3\r\n" % key,
            b"cas %s 0 0 1 %d\r\n5\r\n" % (key, rng.choice([0, 1, 5, 20, 50]))])
    if cm == "ms":
        n = rng.choice([0, 1, 2, 3])
        data = b"".join(rng.choice([b"1", b"z", b"9"]) for _ in range(n))
        if rng.random() < 0.05:
            data += b"x"  # a bad data chunk
        length = rng.choice([str(n).encode()] * 8 + [b"abc", b"-1"])
        return b"ms %s %s %s\r\n%s\r\n" % (key, length, line, data)
    if cm == "mn":
        return b""
    return b"%s %s %s\r\n" % (cm.encode(), key, line)


_CLOCK = re.compile(rb"(\bt|\bl|\bla=|\bexp=)(-?\d+)")
#: memcached increments a number in place only while no other thread holds a reference to
#: the item; when its LRU maintainer happens to be looking at it, the item is replaced and
#: loses its fetched mark. That race shows as h0/h1 and fetch=no/yes.
_FETCHED_RACE = re.compile(rb"\bh[01]\b|\bfetch=(yes|no)\b")


def same_modulo_clock(a: bytes, b: bytes) -> bool:
    if a == b:
        return True
    a, b = _FETCHED_RACE.sub(b"h", a), _FETCHED_RACE.sub(b"h", b)
    if _CLOCK.sub(b"", a) != _CLOCK.sub(b"", b):
        return False
    return all(abs(int(x[1]) - int(y[1])) <= 1 or abs(int(x[1]) - int(y[1])) % 2**32 <= 1
               for x, y in zip(_CLOCK.findall(a), _CLOCK.findall(b)))


def stats(client: Client) -> dict:
    values = stat_values(client.until_end(b"stats\r\n"))
    return {name: values[name] for name in COUNTERS}


@pytest.mark.skipif(memcached_1_6_18() is None, reason="needs memcached 1.6.18 installed")
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [13, 14, 15, 16, 17, 18])
def test_random_meta_sequences_match_memcached(seed):
    rng = random.Random(seed)
    reference = ServerProcess(["-u", "nobody", "-U", "0", "-m", "64", "-o", "no_lru_crawler"],
                              command=[memcached_1_6_18()])
    ours = ServerProcess(["-m", "64"])
    try:
        theirs, mine = reference.connect(), ours.connect()
        mismatches = []
        for step in range(1500):
            cmd = command(rng)
            expected, got = theirs.meta(cmd), mine.meta(cmd)
            if not same_modulo_clock(expected, got):
                mismatches.append(f"#{step} {cmd!r}\n  memcached {expected!r}\n  pymc      {got!r}")
        assert not mismatches, "\n".join(mismatches[:10])
        assert stats(mine) == stats(theirs)
    finally:
        reference.stop()
        ours.stop()
