"""ModifyKeyRoute: rewrites the request's key, then sends it to ``target``
(mcrouter's routes/ModifyKeyRoute.h).

- ``set_routing_prefix``: the key's routing prefix becomes this (``"a/b"`` is read as
  ``/a/b/``; ``""`` removes the prefix);
- ``ensure_key_prefix``: prepended to the key (after the routing prefix) unless already there;
  with ``modify_inplace`` it overwrites the key's first bytes instead of being prepended;
- ``replace_key_prefix``: a key starting with this has it replaced by ``ensure_key_prefix``;
- ``set_key_suffix``: appended to the key.

With ``set_routing_prefix "/a/b/"`` and ``ensure_key_prefix "foo"``: ``/a/b/a`` → ``/a/b/fooa``,
``foo`` → ``/a/b/foo``, ``/b/c/o`` → ``/a/b/fooo``. A rewritten key that is empty, longer than
250 bytes or has spaces or control bytes is answered with mcrouter's local error
``ModifyKeyRoute: invalid key: invalid key: too long`` (and so on) and not sent. Meta requests
with base64 (``b``) keys may hold any byte, so only their length is checked.
"""

from __future__ import annotations

from ..keys import RoutedKey
from ..ops import key_of, with_key
from ...protocol.messages import MAX_KEY_LENGTH
from ...protocol.meta import MetaRequest
from ..results import ErrorReply
from .base import RouteHandle, register


def key_error(key: bytes, check_space: bool = True) -> str | None:
    """mcrouter's isKeyValid as text (mc_req_err_to_string), or None for a valid key."""
    if not key:
        return "invalid key: missing"
    if len(key) > MAX_KEY_LENGTH:
        return "invalid key: too long"
    if check_space and any(byte <= 0x20 or byte == 0x7F for byte in key):
        return "invalid key: space or control character"
    return None


class ModifyKeyRoute(RouteHandle):
    name = "modify-key"

    def __init__(self, target: RouteHandle, routing_prefix: bytes | None = None,
                 key_prefix: bytes = b"", modify_inplace: bool = False,
                 replace_prefix: bytes | None = None, key_suffix: bytes = b"") -> None:
        self.target = target
        self.children = [target]
        self.routing_prefix = routing_prefix
        self.key_prefix = key_prefix
        self.modify_inplace = modify_inplace
        self.replace_prefix = replace_prefix
        self.key_suffix = key_suffix

    def modified_key(self, full: bytes) -> bytes | None:
        """The new key, or None when the key stays as it is."""
        key = RoutedKey(full)
        prefix = self.routing_prefix if self.routing_prefix is not None else key.prefix
        rest = key.without_route
        if self.replace_prefix is not None and rest.startswith(self.replace_prefix):
            return prefix + self.key_prefix + rest[len(self.replace_prefix):] + self.key_suffix
        if not rest.startswith(self.key_prefix):
            if self.modify_inplace and len(rest) >= len(self.key_prefix):
                rest = rest[len(self.key_prefix):]
            return prefix + self.key_prefix + rest + self.key_suffix
        if self.routing_prefix is not None and prefix != key.prefix:
            return prefix + rest + self.key_suffix
        if self.key_suffix:
            return full + self.key_suffix
        return None

    def route(self, req, done) -> None:
        key = self.modified_key(key_of(req))
        if key is None:
            self.target.route(req, done)
            return
        error = key_error(key, not (type(req) is MetaRequest and req.binary))
        if error is not None:
            done(ErrorReply("local_error", "ModifyKeyRoute: invalid key: " + error))
            return
        self.target.route(with_key(req, key), done)


def routing_prefix(text: str) -> str:
    """mcrouter's RoutingPrefix: slashes added where missing, then exactly /region/cluster/."""
    if not text.startswith("/"):
        text = "/" + text
    if not text.endswith("/"):
        text += "/"
    parts = text.split("/")
    if len(parts) != 4 or not parts[1] or not parts[2]:
        raise ValueError(f"Routing prefix ({text}) should be of the form /region/cluster/")
    return text


def _key_part(factory, json, key: str, what: str) -> bytes | None:
    if key not in json:
        return None
    text = factory.require(json, key, str)
    value = text.encode()
    error = key_error(value)
    factory.check(not value or error is None,
                  f"ModifyKeyRoute: invalid {what} '{text}', {error}")
    return value


@register("ModifyKeyRoute")
def make_modify_key_route(factory, json) -> RouteHandle:
    factory.check(isinstance(json, dict), "ModifyKeyRoute should be an object")
    factory.check("target" in json, "ModifyKeyRoute: no target")
    prefix = None
    if "set_routing_prefix" in json:
        text = factory.require(json, "set_routing_prefix", str)
        try:
            prefix = routing_prefix(text).encode() if text else b""
        except ValueError as exc:
            raise factory.error(f"ModifyKeyRoute: set_routing_prefix: {exc}") from None
    key_prefix = _key_part(factory, json, "ensure_key_prefix", "key prefix") or b""
    replace = _key_part(factory, json, "replace_key_prefix", "key prefix")
    suffix = _key_part(factory, json, "set_key_suffix", "key suffix") or b""
    inplace = False
    if "modify_inplace" in json:
        factory.check(replace is None,
                      "replace_key_prefix and modify_inplace cannot be used together")
        inplace = factory.require(json, "modify_inplace", bool)
    return ModifyKeyRoute(factory.create(json["target"], "target"), prefix, key_prefix,
                          inplace, replace, suffix)
