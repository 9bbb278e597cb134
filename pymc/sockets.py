"""Socket plumbing the server and router shells share: listening sockets and the accept loop
(``Acceptor``), address lists, and reads into one shared buffer."""

from __future__ import annotations

import errno
import logging
import resource
import socket

logger = logging.getLogger(__name__)

#: How long a shell stops accepting when the process is out of file descriptors.
ACCEPT_PAUSE = 0.1
#: Connections taken per readiness event of a listening socket (the rest wait for the next
#: loop turn, so a connection storm cannot starve the clients already connected).
ACCEPTS_PER_EVENT = 64

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


class Acceptor:
    """A listening socket on the event loop: each readiness event accepts up to
    ACCEPTS_PER_EVENT connections and hands each to ``accepted(sock, peer)``. Out of file
    descriptors the socket stays readable, so watching it would spin at full CPU: it stops for
    ACCEPT_PAUSE instead (memcached pauses accepts too) and calls ``on_pause()``."""

    def __init__(self, loop, sock: socket.socket, name: str, accepted, on_pause=None) -> None:
        self.loop = loop
        self.sock = sock
        self.name = name
        self.accepted = accepted
        self.on_pause = on_pause
        self.pauses = 0
        self.paused = False
        self._watcher = loop.io(sock.fileno(), 1)
        self._timer = None

    def start(self) -> None:
        self._watcher.start(self._on_ready)

    def _on_ready(self) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self._pause()
                else:
                    logger.error("accept on %s failed: %s", self.name, exc)
                return
            self.accepted(sock, peer)

    def _pause(self) -> None:
        if self.pauses % 100 == 0:
            logger.error("out of file descriptors: not accepting on %s for %d ms; raise the "
                         "limit (ulimit -n, ulimit -Hn)", self.name, ACCEPT_PAUSE * 1000)
        self.pauses += 1
        self.paused = True
        self._watcher.stop()
        self._timer = self.loop.timer(ACCEPT_PAUSE)
        self._timer.start(self._resume)
        if self.on_pause is not None:
            self.on_pause()

    def _resume(self) -> None:
        self.paused = False
        self._watcher.start(self._on_ready)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._watcher.stop()
        self._watcher.close()
        self.sock.close()


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
