"""Socket plumbing the server and router shells share: listening sockets, address lists and
reads into one shared buffer. Plain sockets; the shells own the gevent watchers."""

from __future__ import annotations

import errno
import logging
import resource
import socket

logger = logging.getLogger(__name__)

#: How long a shell stops accepting when the process is out of file descriptors.
ACCEPT_PAUSE = 0.1

RECV_BYTES = 256 * 1024
# One buffer for every read in the process (the shells are single-threaded and copy out at
# once): a fresh 256 KB bytes per recv would be an mmap, page faults and munmap on every
# read (measured: 70% of the server's time in the kernel).
_buffer = bytearray(RECV_BYTES)
_view = memoryview(_buffer)


def receive(sock: socket.socket) -> bytes | None:
    """One read: the bytes, None when nothing is there yet, b"" when the peer closed the
    connection or the read failed."""
    try:
        count = sock.recv_into(_buffer)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
    return _view[:count].tobytes()


def split_hosts(addresses: str) -> list[str]:
    """``-l``/``--listen-addresses``: comma- or semicolon-separated, 127.0.0.1 when empty."""
    hosts = [part.strip() for part in addresses.replace(";", ",").split(",") if part.strip()]
    return hosts or ["127.0.0.1"]


def listen_tcp(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking listening socket (``[v6]`` brackets allowed; IPv6 sockets are v6-only
    so that 0.0.0.0 and :: can both be listed)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def out_of_files(exc: OSError) -> bool:
    return exc.errno in (errno.EMFILE, errno.ENFILE)


def pause_accepting(loop, watcher, resume) -> object:
    """Out of file descriptors: the listening socket stays readable, so watching it would spin
    at full CPU. Stop for ACCEPT_PAUSE (memcached pauses accepts too), then ``resume()``.
    Returns the timer; the caller keeps it."""
    watcher.stop()
    timer = loop.timer(ACCEPT_PAUSE)
    timer.start(resume)
    return timer


def raise_open_files_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit (each client connection is one file);
    returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
