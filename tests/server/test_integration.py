"""pymc-server over real sockets: behaviour a memcached client relies on."""

import signal
import socket
import time

import pytest

from tests.conftest import connect

pytestmark = pytest.mark.integration


def test_set_get_gets_and_pipelining(client):
    client.send(b"set a 5 0 3\r\nabc\r\nset b 0 0 1\r\nx\r\nget a b nope a\r\n")
    assert client.line() == b"STORED\r\n"
    assert client.line() == b"STORED\r\n"
    assert client.read_all() == (b"VALUE a 5 3\r\nabc\r\nVALUE b 0 1\r\nx\r\n"
                                 b"VALUE a 5 3\r\nabc\r\nEND\r\n")


def test_noreply_hides_replies_and_errors(client):
    client.send(b"set a 0 0 1 noreply\r\n1\r\nset a 0 0 -1 noreply\r\n"
                b"incr a 1 noreply\r\ndelete nope noreply\r\nget a\r\n")
    assert client.read_all() == b"VALUE a 0 1\r\n2\r\nEND\r\n"


LONG = b"y" * 251


def test_key_over_250_bytes_ends_a_get_as_memcached_does(client):
    """memcached 1.6.18 looks up (and counts) the keys before an over-long one, drops the
    replies it has not sent yet and answers with an error; a completed get (or mn) has sent
    its reply, so that one stays. Each expectation was recorded from memcached 1.6.18."""
    assert client.call(b"set a 0 0 1\r\nx\r\n") == b"STORED\r\n"
    client.send(b"set b 0 0 1\r\nx\r\nget a b " + LONG + b" a\r\n")
    assert client.read_all() == b"CLIENT_ERROR bad command line format\r\n"
    client.send(b"get a\r\nset c 0 0 1\r\nx\r\nget a " + LONG + b"\r\n")
    assert client.read_all() == (b"VALUE a 0 1\r\nx\r\nEND\r\n"
                                 b"CLIENT_ERROR bad command line format\r\n")
    client.send(b"touch a 0\r\ngat 0 a " + LONG + b"\r\n")
    assert client.read_all() == b"CLIENT_ERROR bad command line format\r\n"
    client.send(b"get " + LONG + b"\r\nget " + LONG + b"\r\n")  # the second drops the first
    assert client.read_all() == b"CLIENT_ERROR bad command line format\r\n"
    client.send(b"mn\r\nset c 0 0 1\r\nx\r\nmn\r\nset c 0 0 1\r\nx\r\n"
                b"gets nope " + LONG + b"\r\n")
    assert client.read_all() == (b"MN\r\nSTORED\r\nMN\r\n"
                                 b"CLIENT_ERROR bad command line format\r\n")
    stats = client.until_end(b"stats\r\n")
    # a, b; then a, a; then the gat's a as a touch; then gets' nope as a miss
    for line in (b"cmd_get 5", b"get_hits 4", b"get_misses 1", b"cmd_touch 2", b"touch_hits 2"):
        assert b"STAT %s\r\n" % line in stats


def test_ttl_with_debugtime(client, memcached_server):
    assert client.call(b"set t 0 5 1\r\nx\r\n") == b"STORED\r\n"
    memcached_server.advance_time(4)  # debugtime 4
    assert client.until_end(b"get t\r\n") == b"VALUE t 0 1\r\nx\r\nEND\r\n"
    memcached_server.advance_time(1)
    assert client.until_end(b"get t\r\n") == b"END\r\n"


def test_debugtime_is_off_by_default(start_server):
    client = start_server().connect()
    assert client.call(b"debugtime 1\r\n") == b"ERROR\r\n"


def test_large_value_round_trip(client):
    value = bytes(range(256)) * 4000  # binary-safe, just under 1 MB
    client.send(b"set big 0 0 %d\r\n" % len(value) + value + b"\r\n")
    assert client.line() == b"STORED\r\n"
    assert client.until_end(b"get big\r\n") == (b"VALUE big 0 %d\r\n" % len(value) + value
                                                 + b"\r\nEND\r\n")


def test_slow_reader_gets_all_output(client):
    value = b"v" * 100_000
    client.call(b"set k 0 0 %d\r\n" % len(value) + value + b"\r\n")
    client.send(b"get k\r\n" * 200)   # ~20 MB of replies, above the output high-water mark
    time.sleep(0.5)
    total = 0
    expected = 200 * (len(b"VALUE k 0 100000\r\n") + len(value) + 2 + 5)
    client.sock.settimeout(10)
    while total < expected:
        chunk = client.sock.recv(1 << 20)
        assert chunk
        total += len(chunk)
    assert total == expected


def test_connection_limit(start_server):
    server = start_server("-c", "2")
    first = server.connect()
    deadline = time.monotonic() + 5  # until the start-up probe's close has been seen
    while b"STAT curr_connections 1\r\n" not in first.until_end(b"stats\r\n"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = server.connect()
    assert first.call(b"version\r\n").startswith(b"VERSION")
    assert second.call(b"version\r\n").startswith(b"VERSION")
    third = server.connect()
    assert third.read_all(0.5) == b"ERROR Too many open connections\r\n"
    stats = first.until_end(b"stats\r\n")
    assert b"STAT rejected_connections 1\r\n" in stats
    assert b"STAT curr_connections 2\r\n" in stats


def test_binary_protocol_connection_is_closed_and_server_lives(memcached_server):
    client = connect(memcached_server)
    client.send(b"\x80\x00\x00\x00" + b"\x00" * 20)
    assert client.is_closed()
    assert connect(memcached_server).call(b"version\r\n").startswith(b"VERSION")


def test_http_request_and_runaway_line_close(memcached_server):
    http = connect(memcached_server)
    http.send(b"GET / HTTP/1.1\r\n")
    assert http.is_closed()
    runaway = connect(memcached_server)
    runaway.send(b"x" * 5000)
    assert runaway.is_closed()
    assert connect(memcached_server).call(b"version\r\n").startswith(b"VERSION")


def test_ascii_auth(tmp_path, start_server):
    auth = tmp_path / "auth"
    auth.write_text("foo:bar\n")
    client = start_server("-Y", str(auth)).connect()
    assert client.call(b"get foo\r\n") == b"CLIENT_ERROR unauthenticated\r\n"
    assert client.call(b"set x 0 0 7\r\nfoo bab\r\n") == b"CLIENT_ERROR authentication failure\r\n"
    assert client.call(b"set x 0 0 7\r\nfoo bar\r\n") == b"STORED\r\n"
    assert client.call(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"


def test_idle_timeout_kicks(start_server):
    server = start_server("-o", "idle_timeout=1")
    idle = server.connect()
    assert idle.call(b"version\r\n").startswith(b"VERSION")
    assert idle.is_closed(wait=4)
    stats = server.connect().until_end(b"stats\r\n")
    assert b"STAT idle_kicks 1\r\n" in stats


def test_shutdown_command(start_server):
    disabled = start_server().connect()
    assert disabled.call(b"shutdown\r\n") == b"ERROR: shutdown not enabled\r\n"
    server = start_server("-A")
    client = server.connect()
    assert client.call(b"shutdown bogus\r\n") == b"CLIENT_ERROR invalid shutdown mode\r\n"
    client.send(b"shutdown\r\n")
    assert server.proc.wait(10) == 0


def test_sigterm_exits_cleanly(server):
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0


def test_stats_report_engine_values(client):
    client.call(b"set a 0 0 100\r\n" + b"x" * 100 + b"\r\n")
    client.until_end(b"get a nope\r\n")
    stats = dict(line.split(b" ")[1:3] for line in client.until_end(b"stats\r\n").splitlines()
                 if line.startswith(b"STAT"))
    assert stats[b"cmd_get"] == b"2" and stats[b"get_hits"] == b"1"
    assert stats[b"get_misses"] == b"1" and stats[b"curr_items"] == b"1"
    assert stats[b"version"] == b"1.6.18" and stats[b"limit_maxbytes"] == b"67108864"
    slabs = client.until_end(b"stats slabs\r\n")
    assert b"STAT 4:chunk_size 192\r\n" in slabs and b"STAT 4:used_chunks 1\r\n" in slabs
    items = client.until_end(b"stats items\r\n")
    assert b"STAT items:4:number 1\r\n" in items
    settings = client.until_end(b"stats settings\r\n")
    assert b"STAT item_size_max 1048576\r\n" in settings
    assert b"STAT growth_factor 1.25\r\n" in settings


def test_evicts_under_memory_pressure(start_server):
    client = start_server("-m", "2").connect()
    value = b"v" * 1000
    for i in range(5000):
        client.send(b"set k%d 0 0 1000 noreply\r\n%s\r\n" % (i, value))
    stats = client.until_end(b"stats\r\n")
    evictions = int(stats.split(b"STAT evictions ")[1].split(b"\r\n")[0])
    assert evictions > 0
    assert client.until_end(b"get k4999\r\n").startswith(b"VALUE k4999")


def test_bad_arguments_exit_quickly(tmp_path):
    import subprocess
    import sys
    for args in (["-I", "1000"], ["-I", "256m"], ["-o", "bogus_option"], ["-B", "foo"]):
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pymc.server", *args],
                              capture_output=True, timeout=20)
        assert proc.returncode == 64, (args, proc.stderr)
        assert proc.stderr
        assert time.monotonic() - started < 10


def test_unix_socket(tmp_path, start_server):
    path = tmp_path / "mc.sock"
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "pymc.server", "-s", str(path)])
    try:
        for _ in range(100):
            if path.exists():
                break
            time.sleep(0.05)
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(path))
        sock.sendall(b"version\r\n")
        assert sock.recv(100).startswith(b"VERSION")
        sock.close()
    finally:
        proc.terminate()
        proc.wait(5)


def test_client_connection_parses_real_replies(client):
    from pymc.protocol.client import ClientConnection
    from pymc.protocol.messages import NEED_DATA, Request

    conn = ClientConnection()
    requests = [Request(b"set", [b"k"], 3, 0, b"hello"), Request(b"gets", [b"k", b"nope"]),
                Request(b"incr", [b"k"], delta=1), Request(b"stats", args=(b"settings",)),
                Request(b"touch", [b"k"], exptime=10)]
    client.send(b"".join(conn.send(r) for r in requests))
    replies = []
    while len(replies) < len(requests):
        conn.receive_data(client.sock.recv(65536))
        while (event := conn.next_event()) is not NEED_DATA:
            replies.append(event)
    assert [r.result for r in replies] == [b"STORED", b"END", b"CLIENT_ERROR", b"END",
                                           b"TOUCHED"]
    assert replies[1].values[0].data == b"hello" and replies[1].values[0].flags == 3
    assert (b"item_size_max", b"1048576") in replies[3].stats
