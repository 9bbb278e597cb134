"""Pool server strings, read as mcrouter's AccessPoint::create does:
``host:port[:protocol[:security[:compression]]]``, ``[v6addr]:port[...]``, ``unix:path[...]``."""

from __future__ import annotations

from dataclasses import dataclass

from .jsonc import ConfigError

PROTOCOLS = frozenset(("ascii", "caret", "thrift", "xdp"))
SECURITY = frozenset(("plain", "ssl", "tls_to_plain", "fizz", "ktls12"))
COMPRESSION = {"compressed": True, "notcompressed": False}


@dataclass(frozen=True)
class AccessPoint:
    host: str
    port: int
    protocol: str = "ascii"
    security: str = "plain"
    compressed: bool = False
    unix: bool = False

    def __str__(self) -> str:
        """``host:port`` as mcrouter prints destinations (IPv6 in brackets)."""
        if self.unix:
            return "unix:" + self.host
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_access_point(text: str, default_protocol: str = "ascii",
                       default_security: str = "plain") -> AccessPoint:
    """Raise ConfigError naming the string when mcrouter would refuse it."""
    def invalid(why: str = "Invalid AccessPoint format") -> ConfigError:
        return ConfigError(f"invalid server {text!r}: {why}")

    rest = text
    unix = False
    if rest.startswith("["):
        closing = rest.find("]")
        if closing < 0:
            raise invalid()
        host, rest = rest[1:closing], rest[closing + 1:]
    else:
        if rest.startswith("unix:"):
            unix, rest = True, rest[5:]
        host, sep, tail = rest.partition(":")
        rest = sep + tail
    if not host:
        raise invalid("no host")
    if rest and not rest.startswith(":"):
        raise invalid()
    parts = rest[1:].split(":") if rest else []
    if unix:
        parts = ["0"] + parts
    if len(parts) > 4:
        raise invalid()
    port_text, protocol, security, compression = (parts + ["", "", "", ""])[:4]
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise invalid("bad port")
    if protocol and protocol not in PROTOCOLS:
        raise invalid("Invalid protocol")
    if security and security not in SECURITY:
        raise invalid("Invalid security mech")
    if unix and security not in ("", "plain"):
        raise invalid("unix sockets cannot use TLS")
    if compression and compression not in COMPRESSION:
        raise invalid("Invalid compression config")
    return AccessPoint(host, int(port_text), protocol or default_protocol,
                       security or default_security, COMPRESSION.get(compression, False), unix)
