"""ErrorRoute: answers every request at once with an error reply and sends nothing.

``"ErrorRoute"`` → ``SERVER_ERROR local error``; ``"ErrorRoute|msg"`` or ``{"response": "msg"}``
→ ``SERVER_ERROR msg``; ``"result"`` picks another error result by mcrouter's name
(``"mc_res_timeout"``; the bare ``"timeout"`` is accepted too). ``enable_logging`` only changes the
name (mcrouter logs the "request" to its stats as if sent to a pool named after the route).
"""

from __future__ import annotations

from ..results import ERRORS, ErrorReply
from .base import RouteHandle, register

class ErrorRoute(RouteHandle):
    def __init__(self, message: str = "", result: str = "local_error",
                 log: bool = True) -> None:
        self.kind = result
        self.message = message.encode()
        self.name = f"error|{'log' if log else 'no-log'}|mc_res_{result}" + (
            f"|{message}" if message else "")

    def route(self, req, done) -> None:
        done(ErrorReply(self.kind, self.message))


@register("ErrorRoute")
def make_error_route(factory, json) -> RouteHandle:
    factory.check(json is None or isinstance(json, (dict, str)),
                  "ErrorRoute: should be string or object")
    if not isinstance(json, dict):
        return ErrorRoute(json or "")
    message = factory.get(json, "response", "", str)
    log = factory.get(json, "enable_logging", True, bool)
    result = factory.get(json, "result", "mc_res_local_error", str)
    kind = result[len("mc_res_"):] if result.startswith("mc_res_") else result
    factory.check(kind in ERRORS,
                  f"ErrorRoute: result {result} is not a valid error result.")
    return ErrorRoute(message, kind, log)
