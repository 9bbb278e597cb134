"""Fixtures that start real pymc-server processes on free loopback ports.

Tests that only talk to a server use pymc's own pytest plugin (``memcached_server``: one
server per session, clean for each test; ``mcrouter``; see pymc/testing); ``start_server`` and
``server`` stay for tests that need a process of their own (flags, signals, shutdown).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pymc.processes import stop_process
from pymc.testing.servers import answers, free_port

pytest_plugins = ["pymc.testing.plugin"]

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


class ServerProcess:
    """A pymc-server subprocess; stopped (by PID) when the test ends."""

    host = "127.0.0.1"

    def __init__(self, args: list[str], command: list[str] | None = None,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        base = command or [sys.executable, "-m", "pymc.server"]
        self.argv = base + ["-p", str(self.port), "-l", "127.0.0.1"] + args
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not answers(self.host, self.port):
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: %s" % self.proc.stderr.read().decode())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not answer within 15 s")
            time.sleep(0.05)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def connect(self, timeout: float = 5.0) -> "Client":
        return Client(self.address, timeout)

    def stop(self) -> None:
        stop_process(self.proc)


def connect(server, timeout: float = 5.0) -> "Client":
    """A raw ``Client`` to anything with ``host`` and ``port`` (pymc.testing's servers and
    routers, ServerProcess)."""
    return Client((server.host, server.port), timeout)


class Client:
    """A raw socket that sends bytes and reads exact replies."""

    def __init__(self, address, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def call(self, data: bytes) -> bytes:
        self.send(data)
        return self.line()

    def until_end(self, data: bytes) -> bytes:
        """Send a command and read the reply up to and including END."""
        self.send(data)
        out = b""
        while True:
            line = self.line()
            out += line
            if line in (b"END\r\n",) or line.startswith((b"ERROR", b"CLIENT_ERROR",
                                                         b"SERVER_ERROR")):
                return out
            if line.startswith(b"VALUE "):
                length = int(line.split()[3])
                out += self.exactly(length + 2)

    def meta(self, data: bytes) -> bytes:
        """Send commands followed by ``mn`` and return every reply before its ``MN``."""
        self.send(data + b"mn\r\n")
        while not self.buf.endswith(b"MN\r\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by server")
            self.buf += chunk
        out, self.buf = self.buf[:-4], b""
        return out

    def read_all(self, idle: float = 0.3) -> bytes:
        self.sock.settimeout(idle)
        data = self.buf
        self.buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        return data

    def is_closed(self, wait: float = 2.0) -> bool:
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def start_server():
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(list(args))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server):
    return start_server("-o", "debugtime")


@pytest.fixture
def client(memcached_server):
    """A raw connection to the session's pymc-server (-o debugtime), clean for this test."""
    c = connect(memcached_server)
    yield c
    c.close()
