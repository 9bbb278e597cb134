"""Addresses and one-question exchanges with lab nodes. Standard library only: the container
health checks (``pymc.lab.health``) import it on every probe."""

from __future__ import annotations

import socket
from typing import Callable

ADDRESS_HINT = "expected HOST:PORT, e.g. 127.0.0.1:11211 or [::1]:11211"


def parse_address(text: str, *, any_port: bool = True) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a socket address; port 0 only if any_port."""
    host, colon, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"bad address {text!r}: {ADDRESS_HINT}")
    port = int(port_text)
    if port == 0 and not any_port:
        raise ValueError(f"bad address {text!r}: port 0 is only for listening; {ADDRESS_HINT}")
    return host, port


def ask(address: str, request: bytes, done: Callable[[bytes], bool],
        timeout: float = 2.0) -> bytes:
    """Send ``request`` on a new connection and read until ``done(reply)`` or the peer closes;
    what came back (callers that need the whole reply check ``done`` themselves)."""
    with socket.create_connection(parse_address(address), timeout=timeout) as sock:
        sock.sendall(request)
        reply = b""
        while not done(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply
