"""``pymc top`` against real pymc-server and pymc-router processes."""

from __future__ import annotations

import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from pymc.top import destination_name, parse_address, parse_destination
from tests.conftest import ServerProcess, free_port
from tests.router.conftest import RouterProcess

pytestmark = pytest.mark.integration

TOP = [sys.executable, "-m", "pymc", "top"]


def top(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(TOP + list(args), capture_output=True, text=True, timeout=timeout)


def table(text: str) -> dict[str, tuple[float, int | None, int]]:
    """Rows ``name  12.5/s  +25  1025`` as {name: (rate, delta or None, total)}."""
    rows = {}
    for match in re.finditer(r"(?m)^(\s*\S+(?: \S+)?)\s+([0-9.]+)/s\s+(\+\d+|-)\s+(\d+)$",
                             text):
        name, rate, delta, total = match.groups()
        rows[name.strip()] = (float(rate), None if delta == "-" else int(delta), int(total))
    return rows


def section(text: str, heading: str) -> dict:
    """The rows of the table whose header line starts with ``heading``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading + " "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return table("\n".join(lines[start + 1:end]))


@pytest.fixture
def server():
    process = ServerProcess([])
    yield process
    process.stop()


@pytest.fixture
def router(tmp_path):
    started = []

    def start():
        backends = [ServerProcess([]), ServerProcess([])]
        started.extend(backends)
        dead = free_port()
        config = {"pools": {"A": {"servers": ["127.0.0.1:%d" % s.port for s in backends]
                                  + ["127.0.0.1:%d" % dead]}},
                  "route": "PoolRoute|A"}
        process = RouterProcess(config, [], tmp_path)
        started.append(process)
        return process, backends, dead

    yield start
    for process in started:
        process.stop()


def traffic(target, check: bool = True) -> None:
    """5 sets, 7 gets (3 hits, 4 misses), 2 deletes, 3 incr, 1 touch (replies checked
    unless ``check`` is false: a router with a dead server answers errors for its keys)."""
    client = target.connect()
    expected = []
    try:
        for i in range(5):
            expected.append((client.call(b"set k%d 0 0 1\r\n%d\r\n" % (i, i)), b"STORED\r\n"))
        for key in (b"k0", b"k1", b"k2", b"x0", b"x1", b"x2", b"x3"):
            client.until_end(b"get %s\r\n" % key)
        expected.append((client.call(b"delete k3\r\n"), b"DELETED\r\n"))
        expected.append((client.call(b"delete nope\r\n"), b"NOT_FOUND\r\n"))
        for _ in range(3):
            client.call(b"incr k4 1\r\n")
        expected.append((client.call(b"touch k0 100\r\n"), b"TOUCHED\r\n"))
    finally:
        client.close()
    if check:
        assert [got for got, _ in expected] == [want for _, want in expected]


def test_once_server_shows_the_traffic(server):
    traffic(server)
    done = top("127.0.0.1:%d" % server.port, "--once")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "memcached 1.6.18 (pymc-server)" in out
    assert "rates: averages since start" in out
    rows = section(out, "command")
    assert rows["get"][2] == 7 and rows["set"][2] == 5
    assert rows["delete"][2] == 2 and rows["incr"][2] == 3 and rows["touch"][2] == 1
    assert rows["get hits"][2] == 3 and rows["get misses"][2] == 4
    assert rows["get"][1] is None  # no previous sample: no delta
    assert "hit ratio 42.9% since start" in out
    assert re.search(r"items 4 \(stored since start \d+\)", out)
    assert "used of 64.0 MiB" in out
    assert re.search(r"evictions 0 \(0\.0/s\)", out)
    assert re.search(r"uptime \d\d:\d\d:\d\d", out)


def _frames(port: int, count: int, interval: float, after_first) -> tuple[list[str], int]:
    """(every frame, exit status) of a non-TTY ``pymc top --count --interval`` on ``port``;
    ``after_first`` runs as soon as the first frame shows (its sample is taken by then: the
    next one is an interval away)."""
    proc = subprocess.Popen(TOP + ["127.0.0.1:%d" % port, "--count", str(count),
                                   "--interval", str(interval)], stdout=subprocess.PIPE,
                            text=True)
    try:
        frames: list[list[str]] = []
        for line in proc.stdout:
            if line.startswith("pymc top "):
                frames.append([])
                if len(frames) == 1:
                    after_first()
            frames[-1].append(line)
        return ["".join(frame) for frame in frames], proc.wait(30)
    finally:
        proc.kill()
        proc.wait()


def test_rates_between_two_frames_server(server):
    traffic(server)

    def more_gets():
        client = server.connect()
        for i in range(10):
            client.until_end(b"get k%d\r\n" % (i % 3))  # 10 hits
        client.close()

    frames, status = _frames(server.port, 2, 0.5, more_gets)
    assert status == 0
    assert len(frames) == 2
    seconds = float(re.search(r"rates over the last ([0-9.]+) s", frames[1]).group(1))
    assert 0.3 < seconds < 5
    rows = section(frames[1], "command")
    rate, delta, total = rows["get"]
    assert (delta, total) == (10, 17)
    assert rate == pytest.approx(10 / seconds, rel=0.1, abs=0.2)
    assert rows["get hits"][1] == 10 and rows["get misses"][1] == 0
    assert rows["set"][1] == 0
    assert "hit ratio 100.0% (last" in frames[1]


def test_once_router_shows_requests_replies_and_tko(router):
    process, backends, dead = router()
    traffic(process, check=False)
    client = process.connect()
    for i in range(30):  # some of these hash to the dead server: (2/3)**30 that none does
        client.until_end(b"get spread%d\r\n" % i)
    client.close()
    done = top("127.0.0.1:%d" % process.port, "--once")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "router mcrouter" in out and "pymc-router" in out
    assert "config md5 %s" % process.admin("config_md5_digest").decode() in out
    assert str(process.config_path) in out
    requests = section(out, "requests")
    assert requests["get"][2] == 37 and requests["set"][2] == 5
    assert requests["delete"][2] == 2 and requests["incr"][2] == 3
    replies = section(out, "replies")
    assert replies["stored"][2] + replies.get("tko", (0, 0, 0))[2] \
        + replies.get("connect_error", (0, 0, 0))[2] >= 5
    servers = {line.split()[0]: line for line in out.splitlines()
               if line.startswith("127.0.0.1:")}
    assert set(servers) == {"127.0.0.1:%d" % s.port for s in backends} | {
        "127.0.0.1:%d" % dead}
    dead_line = servers["127.0.0.1:%d" % dead]
    assert dead_line.split()[1:3] == ["hard", "TKO"] and "connect_error:" in dead_line
    assert re.search(r"TKO soft 0 hard 1", out)
    for backend in backends:
        assert servers["127.0.0.1:%d" % backend.port].split()[1] in ("up", "new")
    assert re.search(r"servers 3: \d up, \d down", out)


def test_rates_between_two_frames_router(router):
    process, backends, dead = router()

    def more_gets():
        client = process.connect()
        for i in range(12):
            client.until_end(b"get r%d\r\n" % i)
        client.close()

    frames, status = _frames(process.port, 2, 0.5, more_gets)
    assert status == 0
    requests = section(frames[1], "requests")
    # pymc top's own admin gets (config md5 and file) are not in the rate.
    assert requests["get"][1] == 12
    assert requests["set"][1] == 0
    seconds = float(re.search(r"rates over the last ([0-9.]+) s", frames[1]).group(1))
    assert requests["get"][0] == pytest.approx(12 / seconds, rel=0.1, abs=0.2)


def test_unreachable_once_is_a_clear_error():
    port = free_port()
    done = top("127.0.0.1:%d" % port, "--once")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "pymc top: cannot read stats from 127.0.0.1:%d: Connection refused" % port)


def test_bad_address_is_a_usage_error():
    done = top("nowhere", "--once")
    assert done.returncode == 2 and "expected HOST:PORT" in done.stderr


def test_server_going_away_is_reported_and_retried():
    server = ServerProcess([])
    try:
        frames, status = _frames(server.port, 4, 0.3, server.stop)
    finally:
        server.stop()
    assert status == 1  # the last frame was an error
    assert "memcached 1.6.18" in frames[0]
    assert "cannot read stats from 127.0.0.1:%d" % server.port in frames[-1]
    assert "retrying every 0.3 s" in frames[-1]


def test_terminal_refresh_in_place_and_ctrl_c():
    server = ServerProcess([])
    try:
        pid, fd = pty.fork()
        if pid == 0:  # the child: pymc top on a terminal
            os.execv(sys.executable, TOP + ["127.0.0.1:%d" % server.port, "--interval", "0.1"])
        output = b""
        deadline = time.monotonic() + 20
        while output.count(b"\x1b[H") < 3 and time.monotonic() < deadline:
            try:
                output += os.read(fd, 65536)
            except OSError:
                break
        os.kill(pid, signal.SIGINT)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    finally:
        server.stop()
    assert os.waitstatus_to_exitcode(status) == 0
    assert output.startswith(b"\x1b[?25l\x1b[H\x1b[2J")  # hide the cursor, clear once
    assert output.count(b"\x1b[H") >= 3  # then redraw from the top
    assert output.endswith(b"\x1b[?25h")  # the cursor is back after Ctrl-C
    assert b"Traceback" not in output


def test_parsing_helpers():
    assert parse_address("127.0.0.1:11211") == (2, ("127.0.0.1", 11211))
    assert parse_address("11211") == (2, ("127.0.0.1", 11211))
    assert parse_address("[::1]:5000")[1] == ("::1", 5000)
    assert parse_address("/run/memcached.sock")[1] == "/run/memcached.sock"
    info = parse_destination("avg_latency_us:112.590 pending_reqs:2 inflight_reqs:2 "
                             "hard_tko;  down:1; connect_error:2 tko:20")
    assert info == {"latency": 112.59, "pending": 2, "state": "down", "tko": "hard",
                    "results": {"connect_error": 2, "tko": 20}}
    assert destination_name("10.0.0.1:11211:ascii:plain:notcompressed-1000") == \
        "10.0.0.1:11211"


@pytest.mark.parametrize("args, message", [
    (["127.0.0.1:99999"], "not between 1 and 65535"),
    (["localhost"], "expected HOST:PORT"),
    (["11211", "--timeout", "-1"], "--timeout must be"),
    (["11211", "--timeout", "0"], "--timeout must be"),
    (["11211", "--interval", "nan"], "--interval must be"),
])
def test_bad_arguments_are_usage_errors(args, message):
    done = top(*args, timeout=30)
    assert done.returncode == 2, done
    assert message in done.stderr and "Traceback" not in done.stderr


def test_an_endless_reply_is_cut_off():
    """Something that is not a memcached and never ends a line: bounded memory, exit 1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def flood() -> None:
            conn, _ = listener.accept()
            with conn:
                try:
                    while True:
                        conn.sendall(b"x" * 65536)
                except OSError:
                    pass

        threading.Thread(target=flood, daemon=True).start()
        done = top("127.0.0.1:%d" % listener.getsockname()[1], "--once", timeout=60)
    assert done.returncode == 1, done
    assert "reply over" in done.stderr and "Traceback" not in done.stderr
