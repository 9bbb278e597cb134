"""Fixtures for router integration tests: real pymc-server backends and a pymc-router
subprocess in front of them, all on free loopback ports."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ServerProcess


#: Figures tests measure but do not assert (latencies), shown in the terminal summary.
MEASUREMENTS: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("router measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


class RouterProcess(ServerProcess):
    """pymc-router with ``config`` (a dict, written to a file) and extra flags."""

    def __init__(self, config, args: list[str], tmp_path) -> None:
        if isinstance(config, Path):
            self.config_path = config  # an existing file (or symlink), used as it is
        else:
            self.config_path = tmp_path / f"mcrouter-{id(self)}.json"
            self.config_path.write_text(config if isinstance(config, str)
                                        else json.dumps(config))
        super().__init__(["--config", f"file:{self.config_path}", *args],
                         command=[sys.executable, "-m", "pymc.router"])

    def stats_reply(self, group: str = "") -> bytes:
        """The reply to ``stats [group]`` as it came (tests check its line formats)."""
        client = self.connect()
        try:
            return client.until_end(f"stats {group}".strip().encode() + b"\r\n")
        finally:
            client.close()

    def admin(self, command: str) -> bytes:
        client = self.connect()
        try:
            reply = client.until_end(b"get __mcrouter__.%s\r\n" % command.encode())
        finally:
            client.close()
        header, _, rest = reply.partition(b"\r\n")
        assert header.startswith(b"VALUE __mcrouter__."), reply
        return rest[:int(header.split()[3])]


@pytest.fixture
def start_router(tmp_path):
    started: list[RouterProcess] = []

    def start(config, *args: str) -> RouterProcess:
        router = RouterProcess(config, list(args), tmp_path)
        started.append(router)
        return router

    yield start
    for router in started:
        router.stop()


@pytest.fixture
def silent_backend():
    """``host:port`` of a socket that accepts (the kernel's backlog) but never answers."""
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield "127.0.0.1:%d" % sock.getsockname()[1]
    sock.close()


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    """``predicate()``'s first true value, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def pool(servers) -> dict:
    return {"servers": ["127.0.0.1:%d" % s.port for s in servers]}
