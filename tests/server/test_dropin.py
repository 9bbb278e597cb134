"""pymc-server as a drop-in ``memcached`` for tools that spawn one.

memcached 1.6.18's ``-vv`` start-up (slab class table, ``<fd server listening``) and its
per-command lines are compared with an installed memcached when there is one; the
``pymc shim`` script is spawned through PATH the way pifpaf, pytest-services and
pytest-xprocess spawn ``memcached`` (their start and wait logic is written out here from
their sources, they need not be installed).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from pymc.processes import stop_process
from pymc.shim import script_text
from tests.conftest import free_port

pytestmark = pytest.mark.integration

MEMCACHED = shutil.which("memcached", path="/usr/bin:/usr/local/bin:/usr/sbin")
needs_memcached = pytest.mark.skipif(MEMCACHED is None, reason="no memcached installed")
PYMC = [sys.executable, "-m", "pymc.server"]
FD = re.compile(rb"^([<>]?)\d+([: ])", re.M)


def memcached_command() -> list[str]:
    command = [MEMCACHED]  # type: ignore[list-item]
    if os.geteuid() == 0:  # memcached refuses to run as root without -u
        command += ["-u", pwd.getpwuid(0).pw_name]
    return command


class Output:
    """Reads a child's output pipe line by line with a deadline."""

    def __init__(self, pipe) -> None:
        self.fd = pipe.fileno()
        self.buf = b""
        self.lines: list[bytes] = []
        self.eof = False

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        ready, _, _ = select.select([self.fd], [], [], remaining)
        if not ready:
            return False
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        *complete, self.buf = self.buf.split(b"\n")
        self.lines += complete
        return True

    def until(self, pattern: bytes, timeout: float = 15.0) -> list[bytes]:
        """Lines read so far, once one of them contains ``pattern``."""
        deadline = time.monotonic() + timeout
        while not any(pattern in line for line in self.lines):
            if not self._fill(deadline):
                raise AssertionError(f"no line with {pattern!r} within {timeout} s; got "
                                     f"{self.lines!r}")
        return self.lines

    def rest(self, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        return self.lines + ([self.buf] if self.buf else [])


@contextlib.contextmanager
def spawn(command: list[str], **kwargs):
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, **kwargs)
    try:
        yield proc
    finally:
        stop_process(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def listening_vv(command: list[str], port: int):
    """``command -vv -p port`` once it says it is listening: (the process, its stderr)."""
    with spawn(command + ["-vv", "-p", str(port)], stderr=subprocess.PIPE) as proc:
        output = Output(proc.stderr)
        output.until(b"server listening")
        yield proc, output


def lines_after(lines: list[bytes], marker: bytes) -> list[bytes]:
    """The lines after the first one containing ``marker``."""
    return lines[next(i for i, line in enumerate(lines) if marker in line) + 1:]


def without_fds(lines: list[bytes]) -> list[bytes]:
    """Descriptor numbers (they differ between runs and servers) written as FD."""
    return [FD.sub(rb"\1FD\2", line) for line in lines]


def startup_lines(command: list[str]) -> list[bytes]:
    """stderr of ``command -vv`` up to and including its listening line."""
    with spawn(command, stderr=subprocess.PIPE) as proc:
        return Output(proc.stderr).until(b"server listening")


def roundtrip(sock: socket.socket, data: bytes, end: bytes) -> bytes:
    sock.sendall(data)
    reply = b""
    while not reply.endswith(end):
        chunk = sock.recv(65536)
        assert chunk, reply
        reply += chunk
    return reply


# -- -vv output compared with memcached's ---------------------------------------------------

@pytest.mark.parametrize("flags", [
    [], ["-f", "1.5", "-n", "64", "-m", "16"], ["-f", "1.05"], ["-I", "2m"],
    ["-o", "slab_chunk_max=16384"], ["-n", "200", "-f", "2"], ["-B", "ascii"],
], ids=lambda flags: " ".join(flags) or "defaults")
@needs_memcached
def test_vv_startup_matches_memcached(flags):
    port = free_port()
    ours = startup_lines(PYMC + ["-vv", "-p", str(port)] + flags)
    theirs = startup_lines(memcached_command() + ["-vv", "-p", str(port), "-l", "127.0.0.1"]
                           + flags)
    # The slab class table, line for line: the same classes from the same -f/-n/-I.
    assert [line for line in ours if line.startswith(b"slab class")] == \
        [line for line in theirs if line.startswith(b"slab class")]
    # Then one listening line per listener; only the descriptor number differs.
    assert without_fds(ours) == without_fds(theirs)
    protocol = b"ascii" if "ascii" in flags else b"auto-negotiate"
    assert re.fullmatch(rb"<\d+ server listening \(%s\)" % protocol, ours[-1])


def test_vv_slab_table_values_for_defaults():
    """Without a memcached to compare with: memcached 1.6.18's table for the defaults."""
    lines = startup_lines(PYMC + ["-vv", "-p", str(free_port())])
    table = [line for line in lines if line.startswith(b"slab class")]
    assert len(table) == 39
    assert table[0] == b"slab class   1: chunk size        96 perslab   10922"
    assert table[10] == b"slab class  11: chunk size       944 perslab    1110"
    assert table[-2] == b"slab class  38: chunk size    394840 perslab       2"
    assert table[-1] == b"slab class  39: chunk size    524288 perslab       2"
    assert lines.index(table[-1]) == len(lines) - 2  # the listening line comes right after


COMMANDS = [  # (bytes sent, end of the reply to wait for; b"" for none)
    (b"set foo 0 0 3\r\nbar\r\n", b"\r\n"), (b"add foo 0 0 1\r\nx\r\n", b"\r\n"),
    (b"set foo 0 0 3 noreply\r\nbaz\r\n", b""), (b"delete nope noreply\r\n", b""),
    (b"get foo nope foo\r\n", b"END\r\n"), (b"gets foo\r\n", b"END\r\n"),
    (b"cas foo 0 0 1 12345\r\nx\r\n", b"\r\n"), (b"gat 100 foo\r\n", b"END\r\n"),
    (b"touch foo 10\r\n", b"\r\n"), (b"touch nope 10\r\n", b"\r\n"),
    (b"set n 0 0 1\r\n5\r\n", b"\r\n"), (b"incr n 2\r\n", b"\r\n"), (b"decr n 1\r\n", b"\r\n"),
    (b"incr foo 1\r\n", b"\r\n"), (b"delete foo\r\n", b"\r\n"), (b"delete foo\r\n", b"\r\n"),
    (b"version\r\n", b"\r\n"), (b"bogus\r\n", b"\r\n"), (b"set x 0 0 nope\r\n", b"\r\n"),
    (b"get " + b"k" * 251 + b"\r\n", b"\r\n"), (b"stats\r\n", b"END\r\n"),
    (b"get n nope " + b"k" * 251 + b" n\r\n", b"\r\n"),
    (b"stats settings\r\n", b"END\r\n"), (b"stats reset\r\n", b"\r\n"),
    (b"stats nope\r\n", b"\r\n"), (b"flush_all\r\n", b"\r\n"),
    (b"cache_memlimit 64\r\n", b"\r\n"),
    (b"ms m 2 T0\r\nhi\r\n", b"\r\n"), (b"mg m v\r\n", b"\r\n"), (b"mg nope v\r\n", b"\r\n"),
    (b"md m q\r\n", b""), (b"me nope\r\n", b"\r\n"), (b"ms m bad\r\n", b"\r\n"),
    (b"mn\r\n", b"MN\r\n"),
]


def command_log(command: list[str], port: int) -> tuple[list[bytes], bytes]:
    """(stderr lines after start-up with descriptors normalised, every reply) for COMMANDS
    on one connection, then a close and a SIGTERM."""
    with listening_vv(command, port) as (proc, output):
        replies = b""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            for data, end in COMMANDS:
                if end:
                    replies += roundtrip(sock, data, end)
                else:
                    sock.sendall(data)
        output.until(b"connection closed.")
        proc.terminate()
        proc.wait(10)
        lines = output.rest()
    return without_fds(lines_after(lines, b"server listening")), replies


@needs_memcached
def test_vv_command_lines_match_memcached():
    ours, our_replies = command_log(PYMC, free_port())
    theirs, their_replies = command_log(memcached_command() + ["-l", "127.0.0.1"], free_port())
    assert ours == theirs
    assert b"<FD new auto-negotiating client connection" in ours
    assert b"FD: Client using the ascii protocol" in ours
    assert b">FD NOREPLY STORED" in ours
    assert b">FD sending key foo" in ours
    assert ours[-2:] == [b"<FD connection closed.", b"Exiting normally"]


def test_vv_command_lines_without_memcached():
    """The same lines, checked on their own (memcached 1.6.18's, recorded)."""
    port = free_port()
    with listening_vv(PYMC, port) as (_, output):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            roundtrip(sock, b"set foo 0 0 3\r\nbar\r\n", b"\r\n")
            sock.sendall(b"set foo 0 0 3 noreply\r\nbaz\r\n")
            roundtrip(sock, b"get foo nope\r\n", b"END\r\n")
            roundtrip(sock, b"cas foo 0 0 1 999\r\nx\r\n", b"\r\n")
            roundtrip(sock, b"mn\r\n", b"MN\r\n")
        lines = output.until(b"connection closed.")
    lines = lines_after(lines, b"server listening")
    assert without_fds(lines) == [
        b"<FD new auto-negotiating client connection",
        b"FD: Client using the ascii protocol",
        b"<FD set foo 0 0 3", b">FD STORED",
        b"<FD set foo 0 0 3 noreply", b">FD NOREPLY STORED",
        b"<FD get foo nope", b">FD sending key foo", b">FD END",
        b"<FD cas foo 0 0 1 999", b"CAS:  failure: expected 2, got 999", b">FD EXISTS",
        b"<FD mn", b">FD MN",
        b"<FD connection closed."]
    assert len({re.match(rb"[<>]?(\d+)", line).group(1) for line in lines
                if not line.startswith(b"CAS")}) == 1  # one descriptor throughout


def test_verbosity_command_turns_the_log_on_and_off():
    port = free_port()
    with spawn(PYMC + ["-p", str(port)], stderr=subprocess.PIPE) as proc:
        output = Output(proc.stderr)
        with _connected(port) as sock:
            roundtrip(sock, b"get quiet\r\n", b"END\r\n")
            roundtrip(sock, b"verbosity 2\r\n", b"OK\r\n")
            roundtrip(sock, b"get loud\r\n", b"END\r\n")
            roundtrip(sock, b"verbosity 0\r\n", b"OK\r\n")
            roundtrip(sock, b"get quiet\r\n", b"END\r\n")
            lines = output.until(b"verbosity 0")
        proc.terminate()
        proc.wait(10)
        lines = output.rest()
    # As memcached: the new level applies to the OK of `verbosity 2`, not of `verbosity 0`.
    assert without_fds(lines) == [
        b">FD OK", b"<FD get loud", b">FD END", b"<FD verbosity 0"]


def test_no_output_at_verbosity_zero_and_exit_line_at_v():
    port = free_port()
    for flags, expected in (([], []), (["-v"], [b"Exiting normally"])):
        with spawn(PYMC + ["-p", str(port)] + flags, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT) as proc:
            with _connected(port) as sock:
                roundtrip(sock, b"set a 0 0 1\r\na\r\nget a\r\n", b"END\r\n")
            proc.terminate()
            assert proc.wait(10) == 0
            assert Output(proc.stdout).rest() == expected


@pytest.mark.parametrize("signum, last", [(signal.SIGTERM, b"Exiting normally"),
                                           (signal.SIGUSR1, b"Gracefully stopping")])
def test_signals_end_like_memcached(signum, last):
    """SIGTERM/SIGINT: memcached just leaves (no `connection closed.` for open connections);
    SIGUSR1: a graceful stop, which says so. Both exit 0."""
    port = free_port()
    with listening_vv(PYMC, port) as (proc, output):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            roundtrip(sock, b"version\r\n", b"\r\n")
            output.until(b"VERSION")
            proc.send_signal(signum)
            assert proc.wait(10) == 0
            lines = output.rest()
    tail = lines_after(lines, b"VERSION")
    if signum == signal.SIGTERM:
        assert tail == [last]
    else:
        assert tail[-1] == last and all(b"connection closed." in line for line in tail[:-1])


@contextlib.contextmanager
def _connected(port: int, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield sock
    finally:
        sock.close()


# -- the shim and the tools' start-up sequences ---------------------------------------------

@pytest.fixture
def shim_path(tmp_path):
    """A PATH whose first directory holds `pymc shim`'s memcached."""
    bindir = tmp_path / "bin"
    done = subprocess.run([sys.executable, "-m", "pymc", "shim", str(bindir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "export PATH=" in done.stdout
    shim = bindir / "memcached"
    assert os.access(shim, os.X_OK)
    return f"{bindir}{os.pathsep}{os.environ.get('PATH', os.defpath)}"


def shim_env(path: str) -> dict[str, str]:
    return dict(os.environ, PATH=path)


def test_shim_refuses_to_replace_another_memcached(tmp_path):
    (tmp_path / "memcached").write_text("#!/bin/sh\nexit 0\n")
    done = subprocess.run([sys.executable, "-m", "pymc", "shim", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "not a pymc shim" in done.stderr
    assert (tmp_path / "memcached").read_text() == "#!/bin/sh\nexit 0\n"


def test_shim_script_text_quotes_and_pythonpath():
    text = script_text("/opt/it's python/bin/python3", "/src/pymc tree")
    assert text.startswith("#!/bin/sh\n")
    assert "exec '/opt/it'\"'\"'s python/bin/python3' -m pymc.server \"$@\"" in text
    assert "PYTHONPATH='/src/pymc tree'\"${PYTHONPATH:+:$PYTHONPATH}\"" in text
    assert "PYTHONPATH" not in script_text(sys.executable, None)


def test_shim_on_path_answers_version_and_execs(shim_path):
    found = shutil.which("memcached", path=shim_path)
    assert found is not None and found.startswith(shim_path.split(os.pathsep)[0])
    done = subprocess.run(["memcached", "-V"], env=shim_env(shim_path), capture_output=True,
                          text=True, timeout=60)
    assert re.match(r"memcached 1\.6\.18\b", done.stdout)


def test_pifpaf_old_driver_waits_for_server_listening(shim_path):
    """pifpaf <= 0.x: ``memcached -vv "-p PORT"`` (one argument), stderr into stdout, read
    lines until one matches ``server listening``, keep reading in the background."""
    port = free_port()
    command = ["memcached", "-vv", "-p " + str(port)]
    with spawn(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, close_fds=True,
               env=shim_env(shim_path), preexec_fn=os.setsid) as proc:
        lines = []
        while True:
            line = proc.stdout.readline()
            lines.append(line)
            assert line, b"".join(lines)  # "Program did not print: `server listening'"
            if re.search("server listening", os.fsdecode(line)):
                break
        assert len(lines) == 40  # the 39 slab classes, then the listening line
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert roundtrip(sock, b"set k 0 0 1\r\nv\r\n", b"\r\n") == b"STORED\r\n"
            assert roundtrip(sock, b"get k\r\n", b"END\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
        assert b"python" in open(f"/proc/{proc.pid}/cmdline", "rb").read()  # exec'd
        proc.terminate()
        assert proc.wait(10) == 0


def test_pifpaf_driver_waits_for_port(shim_path):
    """pifpaf today: ``memcached "-p PORT"``, output to /dev/null, a new session, then up to
    10 tries a second apart of connect_ex(("127.0.0.1", PORT)); stopped with SIGTERM and
    10 s of grace (psutil.wait_procs)."""
    port = free_port()
    with spawn(["memcached", "-p " + str(port)], stdout=subprocess.DEVNULL,
               stderr=subprocess.STDOUT, close_fds=True, env=shim_env(shim_path),
               preexec_fn=os.setsid) as proc:
        for _ in range(10):
            with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(1)
        else:
            pytest.fail("Program did not open port %s" % port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert roundtrip(sock, b"version\r\n", b"\r\n") == b"VERSION 1.6.18\r\n"
        proc.terminate()
        assert proc.wait(10) == 0


def test_pytest_services_starts_memcached_on_a_unix_socket(shim_path, tmp_path):
    """pytest-services: ``which("memcached")``, ``memcached -s RUN_DIR/memcached.sock``
    (output inherited), then checker() = the socket file exists, polled once a second for
    at most 20 s; the finalizer terminates and communicates with timeout/2."""
    executable = shutil.which("memcached", path=shim_path)
    assert executable, "You have to install memcached executable."
    sock_path = str(tmp_path / "memcached.sock")
    with spawn(["memcached", "-s", sock_path], env=shim_env(shim_path)) as watcher:
        times = 0
        while not os.path.exists(sock_path):
            assert watcher.returncode is None, "Error running memcached"
            assert times <= 20, "The memcached service checked did not succeed!"
            time.sleep(1)
            times += 1
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(sock_path)
            assert roundtrip(sock, b"set k 0 0 1\r\nv\r\n", b"\r\n") == b"STORED\r\n"
            assert roundtrip(sock, b"flush_all\r\n", b"\r\n") == b"OK\r\n"  # memcached_clean
        watcher.terminate()
        watcher.communicate(timeout=10)
        assert watcher.returncode == 0
    assert not os.path.exists(sock_path)


def test_xprocess_starter_matches_pattern_in_log(shim_path, tmp_path):
    """pytest-xprocess: Popen(args, cwd=controldir, stdout=<log file, unbuffered>,
    stderr=STDOUT, close_fds=True, preexec_fn=os.setpgrp); then the log is read line by
    line, blank lines skipped, at most ``max_read_lines`` (50) searched for ``pattern``
    with re.search before ``timeout``."""
    port = free_port()
    args = ["memcached", "-vv", "-p", port]  # a Starter's args; xprocess str()s them
    pattern = "server listening"
    max_read_lines, timeout = 50, 120
    controldir = tmp_path / "xprocess" / "memcached"
    controldir.mkdir(parents=True)
    logpath = controldir / "xprocess.log"
    stdout = open(logpath, "wb", 0)
    with spawn([str(x) for x in args], cwd=str(controldir), stdout=stdout,
               stderr=subprocess.STDOUT, env=shim_env(shim_path), close_fds=True,
               preexec_fn=os.setpgrp) as proc:
        stdout.close()
        max_time = time.monotonic() + timeout

        def get_lines(log_file):
            while True:
                line = log_file.readline()
                if not line:
                    time.sleep(0.1)
                if time.monotonic() > max_time:
                    raise TimeoutError(pattern)
                yield line

        with open(logpath, errors="surrogateescape") as log_file:
            non_empty = (line for line in get_lines(log_file) if line.strip())
            lines = itertools.islice(non_empty, max_read_lines)
            assert any(re.search(pattern, line) for line in lines), \
                "log pattern was not found within %d lines" % max_read_lines
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert roundtrip(sock, b"get nope\r\n", b"END\r\n") == b"END\r\n"
        proc.terminate()
        assert proc.wait(10) == 0
