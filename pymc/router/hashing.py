"""mcrouter's hash functions, bit for bit: Ch3 (furc over MurmurHash64A), Crc32, WeightedCh3
(furc plus a SpookyHash V2 acceptance test) and ConstShard.

Every function maps a routing key (bytes) and a pool size to a member index; the known answers in
``../shared/vectors`` are reproduced by the tests.
"""

from __future__ import annotations

import zlib
from typing import Callable, Sequence

M64 = 0xFFFFFFFFFFFFFFFF
_MURMUR_M = 0xC6A4A7935BD1E995
_MURMUR_R = 47
_FURC_SEED = 4193360111
_FURC_SHIFT = 23
_FURC_TRIES = 32
MAX_POOL_SIZE = 1 << _FURC_SHIFT


def murmur64a(data: bytes, seed: int = _FURC_SEED) -> int:
    m, r = _MURMUR_M, _MURMUR_R
    length = len(data)
    h = (seed ^ (length * m)) & M64
    whole = length - length % 8
    for k in memoryview(data[:whole]).cast("Q") if whole else ():
        k = (k * m) & M64
        k ^= k >> r
        k = (k * m) & M64
        h = ((h ^ k) * m) & M64
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * m) & M64
    h ^= h >> r
    h = (h * m) & M64
    return h ^ (h >> r)


def _murmur_rehash(k: int) -> int:
    m, r = _MURMUR_M, _MURMUR_R
    h = (_FURC_SEED ^ (8 * m)) & M64
    k = (k * m) & M64
    k ^= k >> r
    k = (k * m) & M64
    h = ((h ^ k) * m) & M64
    h ^= h >> r
    h = (h * m) & M64
    return h ^ (h >> r)


def furc_hash(key: bytes, n: int) -> int:
    """Facebook's consistent "furc" hash of ``key`` into ``range(n)``."""
    if n <= 1:
        return 0
    words: list[int] = []

    def bit(index: int) -> int:
        word = index >> 6
        while len(words) <= word:
            words.append(_murmur_rehash(words[-1]) if words else murmur64a(key))
        return (words[word] >> (index & 63)) & 1

    d = (n - 1).bit_length()
    a = d
    for _ in range(_FURC_TRIES):
        while not bit(a):
            d -= 1
            if d == 0:
                return 0
            a = d
        a += _FURC_SHIFT
        num = 1
        for _ in range(d - 1):
            num = (num << 1) | bit(a)
            a += _FURC_SHIFT
        if num < n:
            return num
    return 0


def ch3(key: bytes, n: int) -> int:
    return furc_hash(key, n)


def crc32(key: bytes, n: int) -> int:
    return (zlib.crc32(key) & 0x7FFFFFFF) % n


# -- SpookyHash V2 (Bob Jenkins), the 32-bit variant WeightedCh3 uses ---------------------------

_SPOOKY_CONST = 0xDEADBEEFDEADBEEF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & M64


def _short_mix(h0: int, h1: int, h2: int, h3: int) -> tuple[int, int, int, int]:
    for r0, r1, r2, r3 in ((50, 52, 30, 41), (54, 48, 38, 37), (62, 34, 5, 36)):
        h2 = _rot(h2, r0); h2 = (h2 + h3) & M64; h0 ^= h2  # noqa: E702
        h3 = _rot(h3, r1); h3 = (h3 + h0) & M64; h1 ^= h3  # noqa: E702
        h0 = _rot(h0, r2); h0 = (h0 + h1) & M64; h2 ^= h0  # noqa: E702
        h1 = _rot(h1, r3); h1 = (h1 + h2) & M64; h3 ^= h1  # noqa: E702
    return h0, h1, h2, h3


def _short_end(h0: int, h1: int, h2: int, h3: int) -> tuple[int, int]:
    h = [h0, h1, h2, h3]
    # (xor target, rotated, rotation): h[t] ^= h[s]; h[s] = rot(h[s]); h[t] += h[s]
    for target, source, rotation in ((3, 2, 15), (0, 3, 52), (1, 0, 26), (2, 1, 51),
                                     (3, 2, 28), (0, 3, 9), (1, 0, 47), (2, 1, 54),
                                     (3, 2, 32), (0, 3, 25), (1, 0, 63)):
        h[target] ^= h[source]
        h[source] = _rot(h[source], rotation)
        h[target] = (h[target] + h[source]) & M64
    return h[0], h[1]


def _spooky_short(data: bytes, seed1: int, seed2: int) -> tuple[int, int]:
    length = len(data)
    a, b, c, d = seed1, seed2, _SPOOKY_CONST, _SPOOKY_CONST
    pos = 0
    remainder = length % 32
    if length > 15:
        words = memoryview(data[:length - remainder]).cast("Q")
        for i in range(0, len(words), 4):
            c = (c + words[i]) & M64
            d = (d + words[i + 1]) & M64
            a, b, c, d = _short_mix(a, b, c, d)
            a = (a + words[i + 2]) & M64
            b = (b + words[i + 3]) & M64
        pos = length - remainder
        if remainder >= 16:
            c = (c + int.from_bytes(data[pos:pos + 8], "little")) & M64
            d = (d + int.from_bytes(data[pos + 8:pos + 16], "little")) & M64
            a, b, c, d = _short_mix(a, b, c, d)
            pos += 16
            remainder -= 16
    d = (d + (length << 56)) & M64
    tail = data[pos:pos + remainder]
    if remainder == 0:
        c = (c + _SPOOKY_CONST) & M64
        d = (d + _SPOOKY_CONST) & M64
    elif remainder >= 8:
        # bytes 0-7 go to c, the rest (up to 7) to d, both little-endian
        c = (c + int.from_bytes(tail[:8], "little")) & M64
        d = (d + int.from_bytes(tail[8:], "little")) & M64
    else:
        c = (c + int.from_bytes(tail, "little")) & M64
    return _short_end(a, b, c, d)


_MIX_ROTATIONS = (11, 32, 43, 31, 17, 28, 39, 57, 55, 54, 22, 46)
_END_ROTATIONS = (44, 15, 34, 21, 38, 33, 10, 13, 38, 53, 42, 54)


def _mix(data: Sequence[int], s: list[int]) -> None:
    for i in range(12):
        s[i] = (s[i] + data[i]) & M64
        s[(i + 2) % 12] ^= s[(i + 10) % 12]
        s[(i + 11) % 12] ^= s[i]
        s[i] = _rot(s[i], _MIX_ROTATIONS[i])
        s[(i + 11) % 12] = (s[(i + 11) % 12] + s[(i + 1) % 12]) & M64


def _end_partial(h: list[int]) -> None:
    for i in range(12):
        h[(i + 11) % 12] = (h[(i + 11) % 12] + h[(i + 1) % 12]) & M64
        h[(i + 2) % 12] ^= h[(i + 11) % 12]
        h[(i + 1) % 12] = _rot(h[(i + 1) % 12], _END_ROTATIONS[i])


def _spooky_long(data: bytes, seed1: int, seed2: int) -> tuple[int, int]:
    h = [seed1, seed2, _SPOOKY_CONST] * 4
    whole = len(data) - len(data) % 96
    words = memoryview(data[:whole]).cast("Q")
    for i in range(0, len(words), 12):
        _mix(words[i:i + 12], h)
    remainder = len(data) - whole
    last = bytearray(96)
    last[:remainder] = data[whole:]
    last[95] = remainder
    tail = memoryview(bytes(last)).cast("Q")
    for i in range(12):
        h[i] = (h[i] + tail[i]) & M64
    for _ in range(3):
        _end_partial(h)
    return h[0], h[1]


def spooky64(data: bytes, seed: int) -> int:
    """folly::hash::SpookyHashV2::Hash64."""
    short = len(data) < 192
    h1, _ = (_spooky_short if short else _spooky_long)(data, seed, seed)
    return h1


def spooky32(data: bytes, seed: int) -> int:
    """folly::hash::SpookyHashV2::Hash32: the low half of Hash64."""
    return spooky64(data, seed) & 0xFFFFFFFF


_WEIGHT_SEED = 0xFACE2014
_U32_MAX = 0xFFFFFFFF


def weighted_ch3(key: bytes, weights: Sequence[float], tries: int = 32) -> int:
    """WeightedCh3: furc picks a member, kept with probability = its weight; otherwise the key
    is salted with a counter (decimal digits, least significant first) and tried again."""
    n = len(weights)
    if not 0 < n <= MAX_POOL_SIZE:
        raise ValueError("Invalid pool size: %d" % n)
    index = 0
    salted = key
    for salt in range(tries):
        index = furc_hash(salted, n)
        if spooky32(salted, _WEIGHT_SEED) < int(weights[index] * _U32_MAX):
            return index
        salted = key + str(salt).encode()[::-1]
    return index


def const_shard(key: bytes, n: int) -> int:
    """ConstShard: a key ``name:<shard>:rest`` goes to member <shard> (decimal, below n);
    any other key falls back to Ch3."""
    parts = key.split(b":", 2)
    if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < n:
        return int(parts[1])
    return furc_hash(key, n)


HASH_FUNCTIONS: dict[str, Callable[[bytes, int], int]] = {
    "Ch3": ch3, "Crc32": crc32, "ConstShard": const_shard,
}
