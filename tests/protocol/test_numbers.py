import pytest

from pymc.protocol.numbers import strtol32, strtoull, strtoul32


@pytest.mark.parametrize("token, value", [
    (b"0", 0), (b"18446744073709551615", 2**64 - 1), (b"18446744073709551616", None),
    (b"-1", None), (b"+5", 5), (b"abc", None), (b"5abc", None), (b"", None), (b"1_000", None),
])
def test_strtoull(token, value):
    assert strtoull(token) == value


@pytest.mark.parametrize("token, value", [
    (b"4294967295", 4294967295), (b"4294967296", 0), (b"4294967297", 1), (b"-1", None),
])
def test_strtoul32_truncates_like_c(token, value):
    assert strtoul32(token) == value


@pytest.mark.parametrize("token, value", [
    (b"-1", -1), (b"2147483647", 2147483647), (b"2147483648", -2147483648), (b"x", None),
])
def test_strtol32(token, value):
    assert strtol32(token) == value
