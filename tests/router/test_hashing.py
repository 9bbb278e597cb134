"""mcrouter's hash functions against the shared known-answer vectors (every line)."""

import pytest

from pymc.router.hashing import ch3, const_shard, crc32, furc_hash, spooky32, weighted_ch3
from pymc.router.keys import RoutedKey, normalize_prefix, routing_key
from tests.conftest import SHARED

VECTORS = SHARED / "vectors"
pytestmark = pytest.mark.skipif(not VECTORS.is_dir(), reason="shared/vectors not beside repo")


def rows(name: str) -> list[list[bytes]]:
    lines = (VECTORS / name).read_bytes().split(b"\n")
    return [line.split(b"\t") for line in lines if line]


def test_ch3_vectors():
    cases = rows("ch3_vectors.tsv")
    assert len(cases) > 100
    wrong = [(k, n, i, ch3(k, int(n))) for k, n, i in cases if ch3(k, int(n)) != int(i)]
    assert not wrong


def test_crc32_vectors():
    cases = rows("crc32_vectors.tsv")
    wrong = [(k, n, i) for k, n, i in cases if crc32(k, int(n)) != int(i)]
    assert not wrong and len(cases) > 100


def test_weighted_ch3_vectors():
    cases = rows("wch3_vectors.tsv")
    wrong = []
    for key, weights, index in cases:
        got = weighted_ch3(key, [float(w) for w in weights.split(b",")])
        if got != int(index):
            wrong.append((key, weights, index, got))
    assert not wrong and len(cases) >= 60


def test_routing_vectors():
    cases = rows("ch3_routing_vectors.tsv")
    for full, expected_key, n, index in cases:
        assert routing_key(full) == expected_key, full
        assert ch3(routing_key(full), int(n)) == int(index), full


def test_routed_key_parts():
    key = RoutedKey(b"/eqiad/mw/user:1|#|profile")
    assert (key.prefix, key.without_route, key.routing_key) == (
        b"/eqiad/mw/", b"user:1|#|profile", b"user:1")
    assert RoutedKey(b"/eqiad/foo").prefix == b""       # two slashes are not a prefix
    assert RoutedKey(b"plain").routing_key == b"plain"
    assert RoutedKey(b"/a//x").prefix == b"/a//"
    assert normalize_prefix("eqiad/mw") == "/eqiad/mw/"
    assert normalize_prefix("/eqiad/mw/") == "/eqiad/mw/"


def test_furc_edges():
    assert furc_hash(b"anything", 0) == 0 and furc_hash(b"anything", 1) == 0
    assert all(0 <= furc_hash(b"k%d" % i, 7) < 7 for i in range(500))
    # consistency: growing a pool by one moves only keys that land on the new member
    moved = [i for i in range(2000) if furc_hash(b"k%d" % i, 10) != furc_hash(b"k%d" % i, 11)]
    assert all(furc_hash(b"k%d" % i, 11) == 10 for i in moved)
    assert 100 < len(moved) < 300


#: Bob Jenkins' published SpookyHash V2 results: Hash32 of bytes (i + 128) & 255 for i < n,
#: seed 0. Lengths of 192 and more take the long path.
SPOOKY_KNOWN = {0: 0x6BF50919, 1: 0x70DE1D26, 2: 0xA2B37298, 15: 0x83EC01F9, 16: 0xF274736C,
                63: 0x09C1AFB4, 64: 0x069C8BB7, 191: 0xE13D9E19, 192: 0x77E012BD,
                193: 0x2D05114C, 255: 0x2F40EE0B, 256: 0x38CEBF03, 511: 0xCC1C8250}


@pytest.mark.parametrize("length, expected", sorted(SPOOKY_KNOWN.items()))
def test_spooky_known_answers(length, expected):
    data = bytes((i + 128) & 255 for i in range(length))
    assert spooky32(data, 0) == expected


def test_weighted_ch3_long_key_and_zero_weights():
    assert weighted_ch3(b"k" * 250, [1.0, 1.0, 1.0]) == ch3(b"k" * 250, 3)  # weight 1 accepts
    # a zero weight is never accepted while retries remain
    picks = {weighted_ch3(b"key%d" % i, [0.0, 1.0]) for i in range(200)}
    assert picks == {1}


def test_const_shard():
    assert const_shard(b"user:2:name", 5) == 2
    assert const_shard(b"user:7:name", 5) == ch3(b"user:7:name", 5)  # out of range → Ch3
    assert const_shard(b"user:x2:name", 5) == ch3(b"user:x2:name", 5)
    assert const_shard(b"plain", 5) == ch3(b"plain", 5)
