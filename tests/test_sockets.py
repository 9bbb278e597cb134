"""Out of file descriptors: pymc-server and pymc-router pause accepting instead of spinning,
keep serving the connections they have, and accept again once files are free."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import time

import psutil
import pytest

from pymc.testing.servers import answers
from tests.conftest import ServerProcess, free_port

pytestmark = pytest.mark.integration

LIMIT = 48


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def start(argv: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_limit_files)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if answers("127.0.0.1", port):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(proc.stderr.read().decode())


def call(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply


@pytest.fixture(params=["server", "router"])
def limited(request):
    port = free_port()
    backend = None
    if request.param == "server":
        argv = [sys.executable, "-m", "pymc.server", "-p", str(port), "-l", "127.0.0.1"]
    else:
        backend = ServerProcess([])
        config = {"pools": {"A": {"servers": ["127.0.0.1:%d" % backend.port]}},
                  "route": "PoolRoute|A"}
        argv = [sys.executable, "-m", "pymc.router", "-p", str(port),
                "--config", json.dumps(config)]
    proc = start(argv, port)
    yield proc, port
    proc.kill()
    proc.wait()
    if backend is not None:
        backend.stop()


def test_out_of_files_pauses_accepting_without_spinning(limited):
    proc, port = limited
    first = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert call(first, b"set k 0 0 1\r\nx\r\n") == b"STORED\r\n"
    extra = []
    for _ in range(LIMIT + 20):  # more than the process may have open
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        extra.append(sock)
    time.sleep(0.3)
    process = psutil.Process(proc.pid)
    before = process.cpu_times()
    time.sleep(1.0)
    after = process.cpu_times()
    busy = (after.user - before.user) + (after.system - before.system)
    assert busy < 0.5, f"{busy:.2f} s of CPU in 1 s while out of files: spinning"
    # the connection it has is still served
    assert call(first, b"get k\r\n") == b"VALUE k 0 1\r\nx\r\nEND\r\n"
    for sock in extra:
        sock.close()
    # files are free again: new connections are accepted and served
    deadline = time.monotonic() + 5
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                assert call(sock, b"get k\r\n") == b"VALUE k 0 1\r\nx\r\nEND\r\n"
                break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    first.close()
    assert proc.poll() is None
