"""mcrouter's view of a key: routing prefix, key without it, routing key (what gets hashed).

``/eqiad/mw/user:1|#|profile`` → prefix ``/eqiad/mw/``, key without route ``user:1|#|profile``,
routing key ``user:1`` (cut at the hash stop ``|#|``, so related keys land on one shard).
A prefix exists only when the key starts with ``/`` and two more ``/`` follow (mcrouter's
carbon::Keys).
"""

from __future__ import annotations

HASH_STOP = b"|#|"


class RoutedKey:
    __slots__ = ("full", "prefix", "without_route", "routing_key")

    def __init__(self, full: bytes) -> None:
        self.full = full
        prefix_end = 0
        if full[:1] == b"/":
            second = full.find(b"/", 1)
            third = full.find(b"/", second + 1) if second >= 0 else -1
            if third >= 0:
                prefix_end = third + 1
        self.prefix = full[:prefix_end]
        self.without_route = full[prefix_end:]
        stop = self.without_route.find(HASH_STOP)
        self.routing_key = self.without_route if stop < 0 else self.without_route[:stop]

    def __repr__(self) -> str:
        return f"RoutedKey({self.full!r})"


def routing_key(full: bytes) -> bytes:
    """The part of a key that mcrouter hashes."""
    return RoutedKey(full).routing_key


def normalize_prefix(prefix: str) -> str:
    """-R/--route-prefix as mcrouter reads it: ``eqiad/mw`` → ``/eqiad/mw/``."""
    return "/" + prefix.strip("/") + "/"
