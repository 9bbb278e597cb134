"""Route-handle test doubles: children that record what they receive and answer with canned
replies, at once or when the test releases them."""

from __future__ import annotations

from pymc.protocol.messages import Reply, Request, Value
from pymc.protocol.meta import MetaReply, build
from pymc.router.results import ErrorReply, default_reply
from pymc.router.routes.base import RouteHandle


class Recorder(RouteHandle):
    """Answers with ``reply`` (a reply, or a function of the request), or the default reply.
    With ``deferred=True`` replies wait in ``pending`` until ``release()``."""

    def __init__(self, name: str = "child", reply=None, deferred: bool = False) -> None:
        self.name = name
        self.reply = reply
        self.deferred = deferred
        self.seen: list = []
        self.pending: list = []

    def route(self, req, done) -> None:
        self.seen.append(req)
        reply = self.reply(req) if callable(self.reply) else self.reply
        if reply is None:
            reply = default_reply(req)
        if self.deferred:
            self.pending.append((done, reply))
        else:
            done(reply)

    def release(self) -> None:
        pending, self.pending = self.pending, []
        for done, reply in pending:
            done(reply)

    @property
    def keys(self) -> list[bytes]:
        return [getattr(r, "key", None) if not hasattr(r, "keys") else r.keys[0]
                for r in self.seen]


def route(handle: RouteHandle, req):
    """Route synchronously; the reply (or None if it has not arrived)."""
    replies: list = []
    handle.route(req, replies.append)
    assert len(replies) <= 1, "done() called more than once"
    return replies[0] if replies else None


def get(key: bytes = b"k") -> Request:
    return Request(b"get", [key])


def set_(key: bytes = b"k", data: bytes = b"v", exptime: int = 0) -> Request:
    return Request(b"set", [key], 0, exptime, data)


def delete(key: bytes = b"k") -> Request:
    return Request(b"delete", [key])


def hit(key: bytes = b"k", data: bytes = b"v") -> Reply:
    return Reply(b"END", values=[Value(key, 0, data)])


MISS = Reply(b"END")
STORED = Reply(b"STORED")
NOT_STORED = Reply(b"NOT_STORED")
DELETED = Reply(b"DELETED")
NOT_FOUND = Reply(b"NOT_FOUND")


def error(kind: str = "timeout") -> ErrorReply:
    return ErrorReply(kind)


__all__ = ["Recorder", "route", "get", "set_", "delete", "hit", "MISS", "STORED",
           "NOT_STORED", "DELETED", "NOT_FOUND", "error", "build", "MetaReply"]
