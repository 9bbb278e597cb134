"""Pool server strings as mcrouter reads them."""

import pytest

from pymc.router.access_point import AccessPoint, parse_access_point
from pymc.router.jsonc import ConfigError


@pytest.mark.parametrize("text, expected, shown", [
    ("10.64.0.1:11211", AccessPoint("10.64.0.1", 11211), "10.64.0.1:11211"),
    ("mc1001.eqiad.wmnet:11211:ascii:plain", AccessPoint("mc1001.eqiad.wmnet", 11211),
     "mc1001.eqiad.wmnet:11211"),
    ("127.0.0.1:11214:ascii:ssl:compressed",
     AccessPoint("127.0.0.1", 11214, "ascii", "ssl", True), "127.0.0.1:11214"),
    ("[::1]:5000", AccessPoint("::1", 5000), "[::1]:5000"),
    ("[2620:0:861::1]:11211:caret", AccessPoint("2620:0:861::1", 11211, "caret"),
     "[2620:0:861::1]:11211"),
    ("unix:/run/mc.sock", AccessPoint("/run/mc.sock", 0, unix=True), "unix:/run/mc.sock"),
])
def test_valid(text, expected, shown):
    point = parse_access_point(text)
    assert point == expected
    assert str(point) == shown


@pytest.mark.parametrize("text", [
    "", "host", ":11211", "host:", "host:port", "host:70000", "host:1:binary",
    "host:1:ascii:rot13", "host:1:ascii:plain:zip", "host:1:ascii:plain:compressed:x",
    "[::1", "[::1]5000", "unix:/s:ascii:ssl", "host:\u00b2",
])
def test_invalid(text):
    with pytest.raises(ConfigError):
        parse_access_point(text)
