"""ClientConnection: requests serialized, replies parsed in order (used by the router)."""

import pytest

from pymc.protocol.client import RAW_SINGLE_GET, ClientConnection, serialize_request
from pymc.protocol.connection import ServerConnection
from pymc.protocol.messages import NEED_DATA, ProtocolViolation, Request, Value


@pytest.mark.parametrize("request_, wire", [
    (Request(b"set", [b"k"], 5, 10, b"abc"), b"set k 5 10 3\r\nabc\r\n"),
    (Request(b"cas", [b"k"], 0, 0, b"x", 7, noreply=True), b"cas k 0 0 1 7 noreply\r\nx\r\n"),
    (Request(b"get", [b"a", b"b"]), b"get a b\r\n"),
    (Request(b"gat", [b"a"], exptime=30), b"gat 30 a\r\n"),
    (Request(b"incr", [b"n"], delta=3), b"incr n 3\r\n"),
    (Request(b"touch", [b"k"], exptime=5), b"touch k 5\r\n"),
    (Request(b"delete", [b"k"], noreply=True), b"delete k noreply\r\n"),
    (Request(b"stats", args=(b"items",)), b"stats items\r\n"),
    (Request(b"version"), b"version\r\n"),
])
def test_serialize_and_parse_back(request_, wire):
    assert serialize_request(request_) == wire
    server = ServerConnection()
    server.receive_data(wire)
    assert server.next_event() == request_


def replies(requests, data, chunk=None):
    conn = ClientConnection()
    for r in requests:
        conn.send(r)
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    out = []
    for piece in pieces:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            out.append(event)
    return out, conn


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_pipelined_replies_in_order(chunk):
    requests = [Request(b"set", [b"k"], data=b"v"), Request(b"get", [b"k", b"x"]),
                Request(b"gets", [b"k"]), Request(b"incr", [b"n"], delta=1),
                Request(b"delete", [b"k"], noreply=True), Request(b"stats"),
                Request(b"version"), Request(b"get", [b"k"])]
    data = (b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\nVALUE k 0 1 9\r\nv\r\nEND\r\n42\r\n"
            b"STAT pid 1\r\nSTAT version 1.6.18\r\nEND\r\nVERSION 1.6.18\r\n"
            b"SERVER_ERROR out of memory\r\n")
    got, conn = replies(requests, data, chunk)
    assert [r.result for r in got] == [b"STORED", b"END", b"END", b"NUMBER", b"END",
                                       b"VERSION", b"SERVER_ERROR"]
    assert got[1].values == [Value(b"k", 0, b"v")]
    assert got[2].values == [Value(b"k", 0, b"v", 9)]
    assert got[3].number == 42
    assert got[4].stats == [(b"pid", b"1"), (b"version", b"1.6.18")]
    assert got[5].message == b"1.6.18"
    assert got[6].is_error and got[6].message == b"out of memory"
    assert conn.in_flight == 0


def test_value_containing_crlf_and_end():
    got, _ = replies([Request(b"get", [b"k"])], b"VALUE k 0 6\r\nEND\r\nx\r\nEND\r\n", chunk=3)
    assert got[0].values == [Value(b"k", 0, b"END\r\nx")]


@pytest.mark.parametrize("line", [b"VALUE k 0 abc", b"VALUE k 0 -5", b"VALUE k 0", b"VALUE k 0 x 1"])
def test_forwarded_get_with_a_bad_value_line_is_a_violation(line):
    conn = ClientConnection()
    conn.expect([RAW_SINGLE_GET])
    conn.receive_data(line + b"\r\nxyz\r\nEND\r\n")
    with pytest.raises(ProtocolViolation):
        conn.next_event()


def test_unexpected_reply_is_a_violation():
    conn = ClientConnection()
    conn.receive_data(b"STORED\r\n")
    with pytest.raises(ProtocolViolation):
        conn.next_event()
