"""Meta commands in the protocol layer: every flag parsed (server side), serialized and parsed
back (client side), with memcached 1.6.18's error strings and precedence."""

import base64

import pytest

from pymc.protocol.client import ClientConnection
from pymc.protocol.messages import Invalid, ProtocolViolation, Reply, Request
from pymc.protocol.meta import MetaReply, MetaRequest, build, decode_key, key_token
from tests.protocol.test_client import replies
from tests.protocol.test_text import events, one


# -- every flag: what the parser decodes --------------------------------------------------------

@pytest.mark.parametrize("line, attributes", [
    (b"mg k b", {}),  # replaced below: b needs a base64 key
    (b"mg k c f h k l s t u v q", {"no_update": True, "value": True, "quiet": True}),
    (b"mg k O123 P/path Lroute", {}),
    (b"mg k N30", {"vivify": 30}),
    (b"mg k N-1", {"vivify": -1}),
    (b"mg k R10", {"recache": 10}),
    (b"mg k T0", {"exptime": 0}),
    (b"mg k T-5", {"exptime": -5}),
    (b"mg k C77", {"cas": 77}),
    (b"mg k E18446744073709551615", {"new_cas": 2**64 - 1}),
    (b"ms k 1 F4294967295", {"client_flags": 2**32 - 1}),
    (b"ms k 1 F4294967296", {"client_flags": 0}),  # truncated like C's uint32 store
    (b"ms k 1 I", {"invalidate": True}),
    (b"ms k 1 MA", {"mode": b"A"}),
    (b"ma k J5 D7 MD", {"initial": 5, "delta": 7, "mode": b"D"}),
    (b"ma k M-", {"mode": b"-"}),
    (b"md k x I T30", {"remove_value": True, "invalidate": True, "exptime": 30}),
])
def test_flags_are_decoded(line, attributes):
    if line == b"mg k b":
        line = b"mg " + base64.b64encode(b"bin\x00key") + b" b"
        attributes = {"key": b"bin\x00key", "binary": True}
    data = b"x\r\n" if line.startswith(b"ms ") else b""
    request = one(line + b"\r\n" + data)
    assert isinstance(request, MetaRequest), request
    for name, value in attributes.items():
        assert getattr(request, name) == value, name
    assert request.tokens == line.split(b" ")[3 if line.startswith(b"ms ") else 2:]


def test_defaults_when_no_flags():
    request = one(b"ma k\r\n")
    assert (request.delta, request.initial, request.mode, request.cas, request.quiet) == (
        1, 0, None, None, False)
    assert one(b"mn\r\n").command == b"mn"
    assert one(b"mn ignored args\r\n").command == b"mn"


def test_ms_carries_its_data_block():
    request = one(b"ms k 5 T10 c\r\nhello\r\n")
    assert (request.command, request.key, request.data, request.exptime) == (
        b"ms", b"k", b"hello", 10)


# -- errors, in memcached's order -------------------------------------------------------------

LONG_KEY = b"k" * 251
OPAQUE_33 = b"O" + b"o" * 32


@pytest.mark.parametrize("data, reply", [
    (b"mg\r\n", b"ERROR\r\n"),
    (b"mx foo\r\n", b"ERROR\r\n"),
    (b"me\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"mg " + LONG_KEY + b" v\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"mg k v v\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    (b"mg k \xff\r\n", b"CLIENT_ERROR duplicate flag\r\n"),  # memcached: bytes >= 127
    (b"mg k !\r\n", b"CLIENT_ERROR invalid flag\r\n"),
    (b"mg k S10\r\n", b"CLIENT_ERROR invalid flag\r\n"),
    (b"mg k m o o o o\r\n", b"CLIENT_ERROR invalid flag\r\n"),  # stops at the first
    (b"mg k Tabc\r\n", b"CLIENT_ERROR bad token in command line format\r\n"),
    (b"mg k N\r\n", b"CLIENT_ERROR bad token in command line format\r\n"),
    (b"mg k R1x\r\n", b"CLIENT_ERROR bad token in command line format\r\n"),
    (b"mg k C-\r\n", b"CLIENT_ERROR bad token in command line format\r\n"),
    (b"mg k Fz\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"mg k Tabc !\r\n", b"CLIENT_ERROR invalid flag\r\n"),  # later fatal error wins
    (b"mg k Tx Jq\r\n", b"CLIENT_ERROR invalid numeric initial value\r\n"),  # last one wins
    (b"mg k MEE\r\n", b"CLIENT_ERROR incorrect length for M token\r\n"),
    (b"mg k Dq\r\n", b"CLIENT_ERROR invalid numeric delta value\r\n"),
    (b"mg k=== b\r\n", b"CLIENT_ERROR error decoding key\r\n"),
    (b"mg k " + b" ".join([b"v"] * 18) + b"\r\n",
     b"CLIENT_ERROR options flags are too long\r\n"),
    (b"md k " + b" ".join([b"q"] * 18) + b"\r\n", b"CLIENT_ERROR options flags too long\r\n"),
    (b"md k q q\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
    (b"md k Tx\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
    (b"md k " + OPAQUE_33 + b"\r\n", b"CLIENT_ERROR opaque token too long\r\n"),
    (b"ma k Dabc\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
    (b"ma k MZ\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\n"),
    (b"ms k\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"ms k abc\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"ms k -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"ms " + LONG_KEY + b" 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
])
def test_errors(data, reply):
    event = one(data)
    assert isinstance(event, Invalid), event
    assert event.line == reply
    assert not event.noreply  # meta commands always report errors


@pytest.mark.parametrize("line, reply", [
    (b"ms k 3 !", b"CLIENT_ERROR invalid flag\r\n"),
    (b"ms k 3 MX", b"CLIENT_ERROR invalid mode for ms M token\r\n"),
    (b"ms k 3 " + OPAQUE_33, b"CLIENT_ERROR opaque token too long\r\n"),
    (b"ms k 3 MX " + OPAQUE_33, b"CLIENT_ERROR invalid mode for ms M token\r\n"),
    (b"ms k 3 Tq", b"CLIENT_ERROR bad token in command line format\r\n"),
    (b"ms abc 3 b", b"CLIENT_ERROR error decoding key\r\n"),
])
def test_ms_errors_swallow_the_data_block(line, reply):
    got = events(line + b"\r\nabc\r\nmn\r\n", chunk=4)
    assert [type(e) for e in got] == [Invalid, MetaRequest]
    assert got[0].line == reply
    assert got[1].command == b"mn"


def test_ms_bad_data_chunk_and_too_large():
    got = events(b"ms k 1\r\nxyz\r\nmn\r\n")
    assert [getattr(e, "line", e) for e in got[:2]] == [
        b"CLIENT_ERROR bad data chunk\r\n", b"ERROR\r\n"]
    got = events(b"ms k 2000 MA\r\n" + b"x" * 2000 + b"\r\nmn\r\n", max_value_length=1000)
    assert got[0].line == b"SERVER_ERROR object too large for cache\r\n"
    assert got[0].unlink_key == b"k"  # ms drops the old value in every mode
    assert got[1].command == b"mn"


# -- base64 keys --------------------------------------------------------------------------------

@pytest.mark.parametrize("wire, key", [
    (b"AGJpbv9rZXk=", b"\x00bin\xffkey"),
    (b"44OG44K544OI", "テスト".encode()),
    (b"YQ==", b"a"),
    (b"YWI=", b"ab"),
    (b"Y!Q==", b"a"),      # memcached skips bytes outside the alphabet
    (b"YQ==YWJj", b"a"),   # and stops after the first padded group
    (b"abc", None),        # not a multiple of four
    (b"A===", None),       # three padding characters
    (b"====", None),
])
def test_base64_keys_decode_like_memcached(wire, key):
    assert decode_key(wire) == key


def test_key_token_reencodes_binary_keys():
    assert key_token(b"plain", False) == b"kplain"
    assert key_token(b"\x00bin\xffkey", True) == b"kAGJpbv9rZXk= b"


# -- client side: requests out, replies in ----------------------------------------------------

@pytest.mark.parametrize("request_, wire", [
    (build(b"mg", b"k", b"v", b"t", b"Oab"), b"mg k v t Oab\r\n"),
    (build(b"ms", b"k", b"T30", b"F5", b"MA", data=b"hi"), b"ms k 2 T30 F5 MA\r\nhi\r\n"),
    (build(b"ms", b"k", data=b""), b"ms k 0\r\n\r\n"),
    (build(b"md", b"k", b"I", b"T30", b"q"), b"md k I T30 q\r\n"),
    (build(b"ma", b"k", b"N0", b"J10", b"D2", b"MD", b"v"), b"ma k N0 J10 D2 MD v\r\n"),
    (build(b"me", b"k"), b"me k\r\n"),
    (build(b"mn", b""), b"mn\r\n"),
])
def test_requests_serialize_and_parse_back(request_, wire):
    assert request_.to_bytes() == wire
    assert one(wire) == request_


def test_build_refuses_what_a_server_would():
    with pytest.raises(ValueError, match="duplicate flag"):
        build(b"mg", b"k", b"v", b"v")
    with pytest.raises(ValueError, match="bad token"):
        build(b"mg", b"k", b"Tsoon")


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_meta_replies_parse(chunk):
    requests = [build(b"mg", b"k", b"v", b"t", b"c"), build(b"mg", b"k", b"s"),
                build(b"ms", b"k", b"c", data=b"x"), build(b"md", b"k"), build(b"ma", b"n", b"v"),
                build(b"me", b"k"), build(b"mg", b"k", b"v"), build(b"mn", b"")]
    data = (b"VA 5 t-1 c42\r\nhello\r\nHD s5\r\nHD c43\r\nNF\r\nVA 2\r\n11\r\n"
            b"ME k exp=-1 la=0 cas=43 fetch=no cls=1 size=60\r\nEN\r\nMN\r\n")
    got, conn = replies(requests, data, chunk)
    assert got == [
        MetaReply(b"VA", [b"t-1", b"c42"], b"hello"), MetaReply(b"HD", [b"s5"]),
        MetaReply(b"HD", [b"c43"]), MetaReply(b"NF"), MetaReply(b"VA", [], b"11"),
        MetaReply(b"ME", [b"k", b"exp=-1", b"la=0", b"cas=43", b"fetch=no", b"cls=1",
                          b"size=60"]),
        MetaReply(b"EN"), MetaReply(b"MN")]
    assert got[0].flag(b"c") == b"42" and got[0].flag(b"s") is None
    assert conn.in_flight == 0
    assert [r.to_bytes() for r in got[:5]] == [
        b"VA 5 t-1 c42\r\nhello\r\n", b"HD s5\r\n", b"HD c43\r\n", b"NF\r\n", b"VA 2\r\n11\r\n"]


def test_errors_to_meta_requests_are_replies():
    got, _ = replies([build(b"mg", b"k", b"q"), build(b"ms", b"k", data=b"x")],
                               b"CLIENT_ERROR bad command line format\r\n"
                               b"SERVER_ERROR out of memory storing object\r\n")
    assert [(type(r), r.result) for r in got] == [(Reply, b"CLIENT_ERROR"),
                                                      (Reply, b"SERVER_ERROR")]


def test_quiet_requests_resolved_by_mn_opaque_or_classic_reply():
    requests = [build(b"mg", b"a", b"v", b"q", b"O1"), build(b"mg", b"b", b"v", b"q", b"O2"),
                build(b"ms", b"c", b"q", data=b"x"), build(b"mn", b""),
                build(b"mg", b"d", b"q"), build(b"md", b"e", b"q"), build(b"ma", b"f", b"q"),
                Request(b"get", [b"z"])]
    got, conn = replies(requests, b"VA 1 O2\r\nB\r\nMN\r\nNF\r\nEND\r\n")
    assert [(r.code, r.suppressed) if isinstance(r, MetaReply) else r.result
            for r in got] == [
        (b"EN", True), (b"VA", False), (b"HD", True), (b"MN", False),
        (b"EN", True),   # mg cannot answer NF: that reply is a later request's
        (b"NF", False),  # md answers NF even when quiet
        (b"HD", True),   # END is the get's
        b"END"]
    assert conn.in_flight == 0


def test_garbage_reply_is_a_protocol_violation():
    conn = ClientConnection()
    conn.send(build(b"mg", b"k"))
    conn.receive_data(b"VALUE k 0 1\r\n")
    with pytest.raises(ProtocolViolation):
        conn.next_event()
    conn = ClientConnection()
    conn.send(build(b"mg", b"k", b"v"))
    conn.receive_data(b"VA x\r\n")
    with pytest.raises(ProtocolViolation):
        conn.next_event()
