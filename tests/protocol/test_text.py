"""Parsing of classic text commands: bytes in, Request / Invalid / Close out."""

import pytest

from pymc.protocol.connection import ServerConnection
from pymc.protocol.messages import NEED_DATA, Close, Invalid, Request


def events(data: bytes, chunk: int | None = None, **kwargs) -> list:
    conn = ServerConnection(**kwargs)
    out = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        conn.receive_data(piece)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            out.append(event)
    return out


def one(data: bytes, **kwargs):
    got = events(data, **kwargs)
    assert len(got) == 1, got
    return got[0]


@pytest.mark.parametrize("data, expected", [
    (b"get a\r\n", Request(b"get", [b"a"])),
    (b"get a b  c\r\n", Request(b"get", [b"a", b"b", b"c"])),
    (b"gets a\n", Request(b"gets", [b"a"])),
    (b"bget a\r\n", Request(b"bget", [b"a"])),
    (b"gat 10 a b\r\n", Request(b"gat", [b"a", b"b"], exptime=10)),
    (b"gats -1 a\r\n", Request(b"gats", [b"a"], exptime=-1)),
    (b"gat 100\r\n", Request(b"gat", [], exptime=100)),
    (b"set k 5 10 3\r\nabc\r\n", Request(b"set", [b"k"], 5, 10, b"abc")),
    (b"set k 0 0 0\r\n\r\n", Request(b"set", [b"k"], data=b"")),
    (b"add k 0 0 1 noreply\r\nx\r\n", Request(b"add", [b"k"], data=b"x", noreply=True)),
    (b"cas k 0 0 1 99\r\nx\r\n", Request(b"cas", [b"k"], data=b"x", cas_unique=99)),
    (b"set k 4294967296 0 1\r\nx\r\n", Request(b"set", [b"k"], 0, 0, b"x")),
    (b"set k 4294967297 0 1\r\nx\r\n", Request(b"set", [b"k"], 1, 0, b"x")),
    (b"set a\tb 0 0 1\r\nx\r\n", Request(b"set", [b"a\tb"], data=b"x")),
    (b"delete k\r\n", Request(b"delete", [b"k"])),
    (b"delete k 0\r\n", Request(b"delete", [b"k"])),
    (b"delete k noreply\r\n", Request(b"delete", [b"k"], noreply=True)),
    (b"delete k 0 noreply\r\n", Request(b"delete", [b"k"], noreply=True)),
    (b"incr k 5\r\n", Request(b"incr", [b"k"], delta=5)),
    (b"decr k 18446744073709551615\r\n", Request(b"decr", [b"k"], delta=2**64 - 1)),
    (b"touch k 10 noreply\r\n", Request(b"touch", [b"k"], exptime=10, noreply=True)),
    (b"verbosity 1\r\n", Request(b"verbosity", delta=1)),
    (b"flush_all\r\n", Request(b"flush_all", exptime=0, args=())),
    (b"flush_all 10 noreply\r\n", Request(b"flush_all", exptime=10, noreply=True,
                                          args=(b"10", b"noreply"))),
    (b"stats items\r\n", Request(b"stats", args=(b"items",))),
])
def test_requests(data, expected):
    assert one(data) == expected


@pytest.mark.parametrize("data, line", [
    (b"bogus\r\n", b"ERROR\r\n"),
    (b"\r\n", b"ERROR\r\n"),
    (b"GET foo\r\n", b"ERROR\r\n"),
    (b"get\r\n", b"ERROR\r\n"),
    (b"set a 0 0\r\n", b"ERROR\r\n"),
    (b"cas c 0 0 1\r\n", b"ERROR\r\n"),
    (b"set a 0 0 -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"set a 0 0 2147483647\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"set f -1 0 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"set a 0 abc 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"cas c 0 0 1 abc\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"set " + b"k" * 251 + b" 0 0 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"delete d 5\r\n",
     b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
    (b"incr n abc\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
    (b"incr n -1\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
    (b"incr n 18446744073709551616\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
    (b"touch t abc\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"gat abc g\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"verbosity\r\n", b"ERROR\r\n"),
    (b"verbosity abc\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"cache_memlimit abc\r\n", b"ERROR\r\n"),
    (b"get \x00bin\r\n", b"ERROR\r\n"),
])
def test_invalid_lines(data, line):
    event = one(data)
    assert isinstance(event, Invalid)
    assert event.line == line


@pytest.mark.parametrize("line", [b"get a ", b"gets a ", b"get  a ", b"gat 0 a ", b"bget a "])
def test_get_with_long_key_drops_pending_replies(line):
    event = one(line + b"k" * 251 + b"\r\n")
    assert isinstance(event, Invalid) and event.drop_pending


@pytest.mark.parametrize("line", [b"get a ", b"gets a ", b"get  a ", b"gat 0 a ", b"bget a "])
def test_long_get_keys_pass_for_a_server_that_checks_them(line):
    event = one(line + b"k" * 251 + b"\r\n", check_get_keys=False)
    assert type(event) is Request and event.keys == [b"a", b"k" * 251]
    # Other commands' keys are still checked.
    assert isinstance(one(b"touch " + b"k" * 251 + b" 0\r\n", check_get_keys=False), Invalid)


def test_bad_data_chunk_then_rest_is_parsed():
    got = events(b"set a 0 0 1\r\nxyz\r\nget a\r\n")
    assert isinstance(got[0], Invalid) and got[0].line == b"CLIENT_ERROR bad data chunk\r\n"
    assert isinstance(got[1], Invalid) and got[1].line == b"ERROR\r\n"   # the "\r\n" left over
    assert got[2] == Request(b"get", [b"a"])


def test_key_too_long_does_not_skip_data():
    got = events(b"set " + b"k" * 251 + b" 0 0 1\r\nx\r\n")
    assert [e.line for e in got] == [b"CLIENT_ERROR bad command line format\r\n", b"ERROR\r\n"]


def test_noreply_is_carried_on_errors():
    assert one(b"set a 0 0 -1 noreply\r\n").noreply


def test_http_request_closes():
    assert isinstance(one(b"GET / HTTP/1.1\r\n"), Close)


def test_quit_closes():
    assert isinstance(one(b"quit\r\n"), Close)


def test_runaway_line_closes_but_long_get_does_not():
    assert isinstance(one(b"x" * 3000), Close)
    long_get = b"get " + b" ".join(b"key%05d" % i for i in range(20000)) + b"\r\n"
    request = one(long_get, chunk=4096)
    assert len(request.keys) == 20000


@pytest.mark.parametrize("chunk", [1, 2, 7, 1000])
def test_pipelined_commands_in_any_chunking(chunk):
    data = b"set a 0 0 5\r\nhello\r\nget a b\r\ndelete a\r\nincr n 1\r\n"
    got = events(data, chunk=chunk)
    assert [e.command for e in got] == [b"set", b"get", b"delete", b"incr"]
    assert got[0].data == b"hello"


def test_large_value_is_gathered_once():
    value = b"v" * (512 * 1024)
    got = events(b"set big 0 0 %d\r\n" % len(value) + value + b"\r\n", chunk=8192)
    assert got[0].data == value


def test_value_over_item_limit_is_skipped_not_buffered():
    conn = ServerConnection(max_value_length=1024)
    conn.receive_data(b"set k 0 0 5000\r\n")
    event = conn.next_event()
    assert isinstance(event, Invalid)
    assert event.line == b"SERVER_ERROR object too large for cache\r\n"
    assert event.unlink_key == b"k"
    conn.receive_data(b"x" * 5002 + b"get k\r\n")
    assert conn.next_event() == Request(b"get", [b"k"])
    assert conn.buffered == 0


def test_auth_mode():
    conn = ServerConnection()
    conn.authenticated = False
    conn.receive_data(b"get foo\r\nset foo 0 0 7\r\nfoo bar\r\n")
    assert conn.next_event().line == b"CLIENT_ERROR unauthenticated\r\n"
    assert conn.next_event().args == (b"foo", b"bar")


@pytest.mark.parametrize("data", [
    b"set k 1 2 3\r\nabc\r\n", b"set k 4294967295 0 1\r\nx\r\n", b"set k 0 -1 1\r\nx\r\n",
    b"set k 0 0 1 noreply\r\nx\r\n", b"set  k 0 0 1\r\nx\r\n", b"set k 0 0 01\r\nx\r\n",
    b"get a b\r\n", b"get  a\r\n", b"get a \r\n",
])
def test_fast_paths_agree_with_the_general_parser(data):
    from pymc.protocol.text import LINE_PARSERS, parse_line
    line = data.split(b"\r\n", 1)[0]
    general = parse_line(line, LINE_PARSERS)
    got = one(data)
    expected = general.request if hasattr(general, "request") else general
    if hasattr(general, "request"):
        expected.data = data.split(b"\r\n")[1]
    assert got == expected
