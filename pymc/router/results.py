"""Replies as routes judge them: mcrouter's result names and severities, router-made errors,
and the default reply a route gives without asking a backend.

Failures are replies, never exceptions (mcrouter's rule): a timeout is an ``ErrorReply`` with
``kind="timeout"`` that travels up the tree like any answer, so AllSyncRoute can return the worst
and FailoverRoute can decide by kind. Severity follows mcrouter's lib/McResUtil.h.
"""

from __future__ import annotations

from ..protocol.messages import Reply
from ..protocol.meta import MetaReply, MetaRequest
from .ops import GETS, UPDATES, operation

SEVERITY = {
    "ok": 1, "stored": 1, "stalestored": 1, "exists": 1, "deleted": 1, "found": 1,
    "waiting": 2,
    "notfound": 4, "notstored": 4,
    "ooo": 5, "timeout": 5, "connect_timeout": 5, "connect_error": 5, "busy": 5,
    "shutdown": 5, "try_again": 5, "tko": 5,
    "bad_key": 6, "bad_value": 6, "aborted": 6, "deadline_exceeded": 6, "overloaded": 6,
    "remote_error": 7, "unknown": 7,
    "local_error": 8,
    "client_error": 9,
}
UNRANKED = 10  # mcrouter's default, e.g. "touched"

#: mcrouter's results (carbon::Result, lib/carbon/carbon_result.thrift) in enum order, by the
#: names configs use: resultToString's without "mc_res_" (RES_TRY_AGAIN is "try_again").
RESULTS = (
    "unknown", "deleted", "touched", "found", "foundstale", "notfound", "notfoundhot",
    "notstored", "stalestored", "ok", "stored", "exists",
    "ooo", "timeout", "connect_timeout", "connect_error", "busy", "try_again", "shutdown",
    "tko", "bad_command", "bad_key", "bad_flags", "bad_exptime", "bad_lease_id",
    "bad_cas_id", "bad_value", "aborted", "client_error", "local_error", "remote_error",
    "waiting", "deadline_exceeded", "permission_denied", "hot_key", "overloaded")

#: Results that are errors (mcrouter's isErrorResult: every result from ooo on, except
#: waiting; "unknown" comes before ooo and is not one). The one list of them: what is_error,
#: TKO tracking and the error stats count, and the names ErrorRoute's ``result`` and
#: FailoverRoute's ``failover_errors`` accept.
ERRORS = frozenset(RESULTS[RESULTS.index("ooo"):]) - {"waiting"}

#: failover_errors when a config names none (mcrouter's isFailoverErrorResult).
DEFAULT_FAILOVER_ERRORS = frozenset((
    "busy", "shutdown", "tko", "try_again", "local_error", "connect_error", "connect_timeout",
    "timeout", "remote_error", "deadline_exceeded"))

#: How mcrouter writes an error result without a message to an ASCII client.
_ERROR_LINES = {
    "ooo": b"SERVER_ERROR out of order", "timeout": b"SERVER_ERROR timeout",
    "connect_timeout": b"SERVER_ERROR connection timeout",
    "connect_error": b"SERVER_ERROR connection error", "busy": b"SERVER_ERROR 307 busy",
    "try_again": b"SERVER_ERROR 302 try again", "shutdown": b"SERVER_ERROR 301 shutdown",
    "tko": b"SERVER_ERROR unavailable",
    "deadline_exceeded": b"SERVER_ERROR request deadline exceeded",
    "bad_command": b"CLIENT_ERROR bad command", "bad_key": b"CLIENT_ERROR bad key",
    "bad_value": b"SERVER_ERROR bad value", "aborted": b"SERVER_ERROR aborted",
    "client_error": b"CLIENT_ERROR", "local_error": b"SERVER_ERROR local error",
    "remote_error": b"SERVER_ERROR remote error",
    "bad_flags": b"CLIENT_ERROR bad flags", "bad_exptime": b"CLIENT_ERROR bad exptime",
    "bad_lease_id": b"CLIENT_ERROR bad lease_id", "bad_cas_id": b"CLIENT_ERROR bad cas_id",
    "permission_denied": b"SERVER_ERROR permission denied",
    "hot_key": b"SERVER_ERROR hot key", "overloaded": b"SERVER_ERROR overloaded",
}


class ErrorReply(Reply):
    """An error made by the router (or a backend error line), with mcrouter's result kind."""

    __slots__ = ("kind",)

    def __init__(self, kind: str, message: bytes | str = b"") -> None:
        if isinstance(message, str):
            message = message.encode()
        word = b"CLIENT_ERROR" if kind in ("client_error", "bad_key", "bad_command") \
            else b"SERVER_ERROR"
        super().__init__(word, message=message)
        self.kind = kind

    def line(self) -> bytes:
        if self.message:
            return self.result + b" " + self.message + b"\r\n"
        return _ERROR_LINES.get(self.kind, b"SERVER_ERROR unknown result") + b"\r\n"

    def __repr__(self) -> str:
        return f"ErrorReply({self.kind!r}, {self.message!r})"


#: Meta reply codes and classic reply words as mcrouter's result names.
META_RESULTS = {b"VA": "found", b"EN": "notfound", b"NF": "notfound", b"NS": "notstored",
                b"EX": "exists", b"MN": "ok", b"ME": "found"}
_HD_RESULTS = {b"mg": "found", b"ms": "stored", b"md": "deleted", b"ma": "stored"}
LINE_RESULTS = {b"STORED": "stored", b"NOT_STORED": "notstored", b"EXISTS": "exists",
                b"NOT_FOUND": "notfound", b"DELETED": "deleted", b"TOUCHED": "touched",
                b"OK": "ok", b"VERSION": "ok", b"NUMBER": "stored", b"RESET": "ok",
                b"SERVER_ERROR": "remote_error", b"CLIENT_ERROR": "client_error",
                b"ERROR": "remote_error"}


def result_of(reply, req=None) -> str:
    """mcrouter's result name for a reply (``req`` tells what an ``HD`` meant)."""
    kind = type(reply)
    if kind is ErrorReply:
        return reply.kind
    if kind is MetaReply:
        code = reply.code
        if code == b"HD":
            return _HD_RESULTS.get(req.command if req is not None else b"mg", "ok")
        return META_RESULTS.get(code, "unknown")
    word = reply.result
    if word == b"END":
        return "found" if reply.values or reply.raw is not None and reply.number else \
            "notfound"
    return LINE_RESULTS.get(word, "unknown")


def is_error(reply) -> bool:
    return result_of(reply) in ERRORS


def is_hit(reply) -> bool:
    return result_of(reply) == "found"


def severity(result: str) -> int:
    return SEVERITY.get(result, UNRANKED)


def worst(replies: list, req=None):
    """The reply AllSyncRoute returns: the first of the highest severity."""
    best = replies[0]
    best_rank = severity(result_of(best, req))
    for reply in replies[1:]:
        rank = severity(result_of(reply, req))
        if rank > best_rank:
            best, best_rank = reply, rank
    return best


def default_reply(req):
    """What a route answers without a backend (NullRoute, AllAsyncRoute): a miss for reads,
    NOT_STORED for updates, NOT_FOUND otherwise."""
    op = operation(req)
    if type(req) is MetaRequest:
        if req.command == b"mn":
            return MetaReply(b"MN")
        if op in GETS:
            return MetaReply(b"EN")
        return MetaReply(b"NS" if op in UPDATES else b"NF")
    if op in GETS:
        return Reply(b"END")
    if op in UPDATES:
        return Reply(b"NOT_STORED")
    if op == "version":
        return Reply(b"VERSION", message=b"pymc-router")
    return Reply(b"NOT_FOUND")
