"""What routes need to know about a request, without caring whether it came as text or meta.

Routes see one key per request (the proxy splits multi-gets). ``operation(req)`` gives
mcrouter's operation name (``get``, ``set``, ``delete``, ``incr``, ...; meta commands map onto
the classic operation they perform, so ``OperationSelectorRoute`` treats ``ms`` like ``set``);
``op_class(req)`` gives the failover_errors class (gets / updates / deletes / other).
Requests are never mutated once routed: ``with_key`` and ``with_exptime`` return copies, because
several routes may hold the same request (AllSync, Shadow).
"""

from __future__ import annotations

import copy

from ..protocol.messages import STORAGE_COMMANDS, Request
from ..protocol.meta import MS_MODES, MetaRequest, encode_key

GETS = frozenset(("get", "gets", "gat", "gats", "lease-get", "metaget"))
UPDATES = frozenset(("set", "add", "replace", "append", "prepend", "cas", "lease-set"))
DELETES = frozenset(("delete",))
#: Operations that write: a broadcast prefix sends these everywhere and waits for none.
WRITES = UPDATES | DELETES | frozenset(("incr", "decr", "touch"))

_TEXT_OPS = {c: c.decode() for c in (b"get", b"gets", b"gat", b"gats", b"set", b"add",
                                     b"replace", b"append", b"prepend", b"cas", b"delete",
                                     b"incr", b"decr", b"touch", b"version", b"stats",
                                     b"flush_all")}
_TEXT_OPS[b"flush_all"] = "flushall"
_WITH_EXPTIME = STORAGE_COMMANDS | {b"touch", b"gat", b"gats"}


def operation(req) -> str:
    if type(req) is MetaRequest:
        return _meta_operation(req)
    return _TEXT_OPS.get(req.command) or req.command.decode("latin-1")


def _meta_operation(req: MetaRequest) -> str:
    command = req.command
    if command == b"mg" or command == b"me":
        return "get"
    if command == b"md":
        return "delete"
    if command == b"ms":
        if req.cas is not None:
            return "cas"
        return MS_MODES.get(req.mode or b"S", b"set").decode()
    if command == b"ma":
        return "decr" if req.mode in (b"D", b"-") else "incr"
    return command.decode()


def op_class(op: str) -> str:
    if op in GETS:
        return "gets"
    if op in UPDATES:
        return "updates"
    if op in DELETES:
        return "deletes"
    return "other"


def key_of(req) -> bytes:
    if type(req) is MetaRequest:
        return req.key
    return req.keys[0] if req.keys else b""


def with_key(req, key: bytes):
    """A copy of ``req`` for another key (the full key, routing prefix included)."""
    if type(req) is MetaRequest:
        clone = copy.copy(req)
        clone.tokens = list(req.tokens)
        clone.key = key
        clone.wire_key = encode_key(key) if req.binary else key
        return clone
    return Request(req.command, [key], req.flags, req.exptime, req.data, req.cas_unique,
                   req.delta, req.noreply, req.args)


def exptime_of(req) -> int | None:
    """The request's exptime, or None when the operation carries none."""
    if type(req) is MetaRequest:
        return req.exptime
    if req.command in _WITH_EXPTIME:
        return req.exptime
    return None


def with_exptime(req, exptime: int):
    if type(req) is MetaRequest:
        clone = copy.copy(req)
        clone.exptime = exptime
        token = b"T%d" % exptime
        tokens = [t for t in req.tokens if t[:1] != b"T"]
        clone.tokens = tokens + [token]
        return clone
    return Request(req.command, list(req.keys), req.flags, exptime, req.data,
                   req.cas_unique, req.delta, req.noreply, req.args)


def without_quiet(req):
    """Meta requests are forwarded without ``q``: the proxy hides nominal replies itself, so
    the backend connection always gets one reply per request."""
    if type(req) is MetaRequest and req.quiet:
        clone = copy.copy(req)
        clone.tokens = [t for t in req.tokens if t != b"q"]
        clone.quiet = False
        return clone
    return req
