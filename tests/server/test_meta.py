"""Meta commands against pymc-server over real sockets: every flag's reply, counters, and the
stale-while-revalidate (stampede protection) pattern across several clients."""

import base64
import re
import threading

import pytest

from pymc.protocol.client import ClientConnection
from pymc.protocol.messages import NEED_DATA
from pymc.protocol.meta import build
from pymc.protocol.stats import stat_values
from tests.conftest import connect

pytestmark = pytest.mark.integration


@pytest.fixture
def mc(memcached_server):
    client = connect(memcached_server)
    yield client
    client.close()


def matches(pattern: bytes, reply: bytes) -> bool:
    """``pattern`` is literal except ``<N>``: any number (CAS values, seconds)."""
    regex = re.escape(pattern).replace(re.escape(b"<N>"), rb"-?\d+")
    return re.fullmatch(regex, reply) is not None


def cas_of(mc, key: bytes) -> int:
    return int(re.search(rb" c(\d+)", mc.meta(b"mg %s c\r\n" % key)).group(1))


# -- mg: one flag at a time on a stored item ----------------------------------------------------

@pytest.mark.parametrize("flags, reply", [
    (b"", b"HD\r\n"),
    (b"v", b"VA 3\r\nabc\r\n"),
    (b"s", b"HD s3\r\n"),
    (b"f", b"HD f42\r\n"),
    (b"t", b"HD t<N>\r\n"),
    (b"c", b"HD c<N>\r\n"),
    (b"k", b"HD k%(key)s\r\n"),
    (b"Oxyz", b"HD Oxyz\r\n"),
    (b"q", b"HD\r\n"),                    # q hides only misses
    (b"q v", b"VA 3\r\nabc\r\n"),
    (b"u", b"HD\r\n"),
    (b"P/a/b Lroute", b"HD\r\n"),         # proxy hints are ignored
    (b"k v s f Oa t", b"VA 3 k%(key)s s3 f42 Oa t<N>\r\nabc\r\n"),
    (b"E99", b"HD\r\n"),                  # E only matters when mg creates the item
])
def test_mg_flags_on_a_hit(mc, flags, reply):
    key = b"hit_" + re.sub(rb"\W", b"_", flags)
    assert mc.meta(b"ms %s 3 F42 T100\r\nabc\r\n" % key) == b"HD\r\n"
    got = mc.meta(b"mg %s %s\r\n" % (key, flags))
    assert matches(reply % {b"key": key}, got), got


@pytest.mark.parametrize("flags, reply", [
    (b"v", b"EN\r\n"),
    (b"k Oabc v", b"EN kmiss_k Oabc\r\n"),  # misses still echo k and O
    (b"q v", b""),
    (b"q k", b""),
])
def test_mg_flags_on_a_miss(mc, flags, reply):
    key = b"miss_" + flags[:1]
    assert mc.meta(b"mg %s %s\r\n" % (key, flags)) == reply


def test_mg_ttl_and_touch_order(mc):
    mc.meta(b"ms ttl 1 T100\r\nx\r\n")
    assert matches(b"HD t<N>\r\n", mc.meta(b"mg ttl t T300\r\n"))  # t before T: old TTL
    ttl = int(mc.meta(b"mg ttl T300 t\r\n")[4:-2])                  # T before t: new TTL
    assert 298 <= ttl <= 300
    mc.meta(b"ms forever 1 T0\r\nx\r\n")
    assert mc.meta(b"mg forever t\r\n") == b"HD t-1\r\n"


def test_mg_hit_before_last_access_and_no_bump(client):
    client.meta(b"ms h 1\r\nx\r\n")
    assert client.meta(b"mg h h l\r\n") == b"HD h0 l0\r\n"
    assert client.meta(b"mg h h l\r\n") == b"HD h1 l0\r\n"
    client.meta(b"ms nu 1\r\nx\r\n")
    assert client.meta(b"mg nu u h\r\n") == b"HD h0\r\n"  # u: not marked fetched
    assert client.meta(b"mg nu h\r\n") == b"HD h0\r\n"    # reports the state before
    assert client.meta(b"mg nu u h\r\n") == b"HD h1\r\n"
    assert client.call(b"debugtime 5\r\n") == b"OK\r\n"
    assert client.meta(b"mg h l\r\n") in (b"HD l5\r\n", b"HD l6\r\n")


def test_mg_C_skips_the_value_when_the_cas_matches(mc):
    mc.meta(b"ms cc 2\r\nhi\r\n")
    cas = cas_of(mc, b"cc")
    assert mc.meta(b"mg cc v C%d\r\n" % cas) == b"HD\r\n"
    assert mc.meta(b"mg cc v C%d\r\n" % (cas + 1)) == b"VA 2\r\nhi\r\n"


# -- ms ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [
    # (command, data, reply); data None = no data block
    [(b"ms m1 1 ME", b"a", b"HD"), (b"ms m1 1 ME", b"b", b"NS"), (b"mg m1 v", None, b"VA 1\r\na")],
    [(b"ms m2 1 MA", b"a", b"NS"), (b"ms m2 1 MP", b"a", b"NS"), (b"ms m2 1 MR", b"a", b"NS"),
     (b"ms m2 1 MS", b"b", b"HD"), (b"ms m2 1 MA", b"c", b"HD"), (b"ms m2 1 MP", b"a", b"HD"),
     (b"mg m2 v s", None, b"VA 3 s3\r\nabc")],
    [(b"ms m3 2 F7 T50", b"hi", b"HD"), (b"ms m3 1 MA", b"!", b"HD"),
     (b"mg m3 v f t", None, b"VA 3 f7 t<N>\r\nhi!")],       # append keeps flags and TTL
    [(b"ms m4 1 q k Oxyz", b"a", b""), (b"ms m4 1 k Oxyz", b"a", b"HD km4 Oxyz"),
     (b"ms m4 1 ME q Oxyz", b"a", b"NS Oxyz")],              # q hides only HD
    [(b"ms m5 1 c", b"a", b"HD c<N>"), (b"ms m5 1 C1 c", b"b", b"EX c0"),
     (b"ms nom5 1 C1 c", b"b", b"NF c0"), (b"ms m5 1 MX", b"z", b"CLIENT_ERROR invalid mode for ms M token")],
    [(b"ms m6 3 s", b"abc", b"HD s3"), (b"ms m6 2 MA s", b"de", b"HD s5")],  # s: stored size
    [(b"ms m7 1 MA N30", b"x", b"HD"), (b"mg m7 v t", None, b"VA 1 t<N>\r\nx")],  # N: vivify
    [(b"ms m8 1 E12345 c", b"x", b"HD c12345"), (b"mg m8 c", None, b"HD c12345")],
])
def test_ms(mc, steps):
    for command, data, reply in steps:
        wire = command + b"\r\n" + (data + b"\r\n" if data is not None else b"")
        got = mc.meta(wire)
        expected = reply + b"\r\n" if reply else b""
        assert matches(expected, got), (command, got)


def test_ms_cas_and_append_cas(mc):
    mc.meta(b"ms ca 1\r\na\r\n")
    cas = cas_of(mc, b"ca")
    assert mc.meta(b"ms ca 1 C%d MA\r\nb\r\n" % (cas + 1)) == b"EX\r\n"
    assert mc.meta(b"ms ca 1 C%d MA\r\nb\r\n" % cas) == b"HD\r\n"
    assert mc.meta(b"ms ca 1 C0\r\nz\r\n") == b"EX\r\n"  # C0 is no token at all
    assert mc.meta(b"mg ca v\r\n") == b"VA 2\r\nab\r\n"


def test_ms_errors_swallow_data(mc):
    assert mc.meta(b"ms e1 1 !\r\nx\r\n") == b"CLIENT_ERROR invalid flag\r\n"
    assert mc.meta(b"ms e1 1\r\nxyz\r\n") == b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"
    big = b"x" * (1024 * 1024 + 1)
    mc.meta(b"ms e2 1\r\nx\r\n")
    assert mc.meta(b"ms e2 %d MA\r\n%s\r\n" % (len(big), big)) == \
        b"SERVER_ERROR object too large for cache\r\n"
    assert mc.meta(b"mg e2 v\r\n") == b"EN\r\n"  # the old value went too, in any mode


# -- md ---------------------------------------------------------------------------------------

def test_md(mc):
    mc.meta(b"ms d1 1\r\nx\r\n")
    assert mc.meta(b"md d1 k Oab\r\n") == b"HD kd1 Oab\r\n"
    assert mc.meta(b"md d1\r\n") == b"NF\r\n"
    assert mc.meta(b"md d1 q\r\n") == b"NF\r\n"  # only HD is hidden
    mc.meta(b"ms d1 1\r\nx\r\n")
    assert mc.meta(b"md d1 q\r\n") == b""
    mc.meta(b"ms d2 1\r\nx\r\n")
    cas = cas_of(mc, b"d2")
    assert mc.meta(b"md d2 C%d\r\n" % (cas + 1)) == b"EX\r\n"
    assert mc.meta(b"md d2 C%d\r\n" % cas) == b"HD\r\n"


def test_md_x_leaves_an_empty_tombstone(mc):
    mc.meta(b"ms dx 5 F3\r\nvalue\r\n")
    cas = cas_of(mc, b"dx")
    assert mc.meta(b"md dx x\r\n") == b"HD\r\n"
    assert mc.meta(b"mg dx v c f\r\n") == b"VA 0 c%d f0\r\n\r\n" % cas
    assert mc.meta(b"md dx x I E777\r\n") == b"HD\r\n"
    assert mc.meta(b"mg dx c\r\n") == b"HD c777 X W\r\n"


# -- ma ---------------------------------------------------------------------------------------

def test_ma(mc):
    assert mc.meta(b"ma a1\r\n") == b"NF\r\n"
    assert mc.meta(b"ma a1 q\r\n") == b"NF\r\n"
    assert mc.meta(b"ma a1 N0 J10 v\r\n") == b"VA 2\r\n10\r\n"
    assert mc.meta(b"ma a1 v\r\n") == b"VA 2\r\n11\r\n"
    assert mc.meta(b"ma a1 MD D5 v\r\n") == b"VA 1\r\n6\r\n"
    assert mc.meta(b"ma a1 M- D100 v\r\n") == b"VA 1\r\n0\r\n"
    assert mc.meta(b"ma a1 M+ D18446744073709551615 v\r\n") == \
        b"VA 20\r\n18446744073709551615\r\n"
    assert mc.meta(b"ma a1 v\r\n") == b"VA 1\r\n0\r\n"  # incr wraps
    assert mc.meta(b"ma a1 q\r\n") == b""
    assert matches(b"HD t-1 c<N> ka1 Oo\r\n", mc.meta(b"ma a1 t c k Oo\r\n"))
    cas = cas_of(mc, b"a1")
    assert mc.meta(b"ma a1 C%d\r\n" % (cas + 1)) == b"EX\r\n"
    assert mc.meta(b"ma a1 C%d E5000 c\r\n" % cas) == b"HD c5000\r\n"
    mc.meta(b"ms a2 2\r\nhi\r\n")
    assert mc.meta(b"ma a2\r\n") == \
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"


def test_ma_ttl(mc):
    mc.meta(b"ms a3 1 T100\r\n5\r\n")
    ttl = int(mc.meta(b"ma a3 T300 t\r\n")[4:-2])
    assert 298 <= ttl <= 300
    # memcached quirk: when the number outgrows its digits the item is replaced, and T lands
    # on the replaced copy: the stored TTL does not change.
    mc.meta(b"ms a4 1 T100\r\n9\r\n")
    mc.meta(b"ma a4 T300\r\n")
    assert int(mc.meta(b"mg a4 t\r\n")[4:-2]) <= 100


# -- me, mn, binary keys ------------------------------------------------------------------------

def test_me_and_mn(mc):
    assert mc.meta(b"set me1 0 100 3\r\nabc\r\n") == b"STORED\r\n"
    assert matches(b"ME me1 exp=<N> la=0 cas=<N> fetch=no cls=1 size=65\r\n",
                   mc.meta(b"me me1\r\n"))
    assert mc.meta(b"me nokey\r\n") == b"EN\r\n"
    assert mc.meta(b"mn\r\n") == b"MN\r\n"


def test_binary_keys(mc):
    key = b"\x00bin\xffkey \r\n"
    wire = base64.b64encode(key)
    assert mc.meta(b"ms %s 2 b\r\nhi\r\n" % wire) == b"HD\r\n"
    assert mc.meta(b"mg %s b k v\r\n" % wire) == b"VA 2 k%s b\r\nhi\r\n" % wire
    assert mc.meta(b"mg %s v\r\n" % wire) == b"EN\r\n"  # without b it is another key
    assert matches(b"ME %s exp=-1 la=<N> cas=<N> fetch=yes cls=1 size=<N>\r\n" % wire,
                   mc.meta(b"me %s b\r\n" % wire))
    assert mc.meta(b"md %s b q\r\n" % wire) == b""
    assert mc.meta(b"mg %s b k q\r\n" % wire) == b""
    assert mc.meta(b"mg %s b k\r\n" % wire) == b"EN k%s b\r\n" % wire


# -- counters -----------------------------------------------------------------------------------

def stats(client) -> dict:
    return stat_values(client.until_end(b"stats\r\n"))


def test_meta_commands_count_like_classic_ones(client):
    client.meta(b"ms k 1\r\nx\r\nmg k v\r\nmg k\r\nmg nope v\r\nmg k T30\r\nmg nope T30\r\n"
                b"md k\r\nmd k\r\nma n\r\nma n N0\r\nma n MD\r\nme n\r\n")
    s = stats(client)
    assert (s["cmd_set"], s["cmd_get"], s["get_hits"], s["get_misses"]) == ("1", "4", "2", "2")
    assert (s["cmd_touch"], s["touch_hits"]) == ("1", "1")  # a miss with T counts as a get
    assert (s["delete_hits"], s["delete_misses"]) == ("1", "1")
    assert (s["incr_misses"], s["decr_hits"], s["cmd_meta"]) == ("1", "1", "1")


# -- stampede protection ----------------------------------------------------------------------

def test_stampede_one_client_wins_the_recache(memcached_server):
    """The anti-dogpile pattern: on a miss everyone asks with N; one gets W and recomputes,
    the others see Z (someone else is on it) until the winner's ms lands."""
    a, b, c = (connect(memcached_server) for _ in range(3))
    won = a.meta(b"mg hot v c N30 t\r\n")
    assert matches(b"VA 0 c<N> t30 W\r\n\r\n", won)
    for other in (b, c):
        assert matches(b"VA 0 c<N> t<N> Z\r\n\r\n", other.meta(b"mg hot v c N30 t\r\n"))
    cas = int(re.search(rb" c(\d+)", won).group(1))
    assert b.meta(b"ms hot 4 C%d T60\r\nlate\r\n" % (cas + 1)) == b"EX\r\n"  # not the winner
    assert a.meta(b"ms hot 5 C%d T60\r\nfresh\r\n" % cas) == b"HD\r\n"
    for other in (b, c):
        assert other.meta(b"mg hot v N30\r\n") == b"VA 5\r\nfresh\r\n"  # no W, Z or X


def test_stale_while_revalidate_after_md_invalidate(memcached_server):
    """md I marks the value stale: the first reader wins (X W), the others keep serving the
    stale value (X Z) until the winner sets a new one; a late stale writer cannot undo it."""
    writer, a, b = (connect(memcached_server) for _ in range(3))
    writer.meta(b"ms page 3 T300\r\nold\r\n")
    old_cas = cas_of(writer, b"page")
    assert writer.meta(b"md page I T30\r\n") == b"HD\r\n"
    first = a.meta(b"mg page v c t\r\n")
    assert matches(b"VA 3 c<N> t30 X W\r\nold\r\n", first) or \
        matches(b"VA 3 c<N> t29 X W\r\nold\r\n", first)
    assert b.meta(b"mg page v\r\n") == b"VA 3 Z X\r\nold\r\n"
    assert b.meta(b"mg page v\r\n") == b"VA 3 Z X\r\nold\r\n"
    # A writer holding the pre-invalidation CAS may store, but the value stays stale.
    assert b.meta(b"ms page 4 I C%d T90\r\nlate\r\n" % old_cas) == b"HD\r\n"
    stale = b.meta(b"mg page v t\r\n")
    assert stale.startswith(b"VA 4 t") and stale.endswith(b" Z X\r\nlate\r\n")
    assert int(stale.split(b" ")[2][1:]) <= 30  # the TTL was not raised
    new_cas = int(re.search(rb" c(\d+)", a.meta(b"mg page c\r\n")).group(1))
    assert a.meta(b"ms page 5 C%d T300\r\nfresh\r\n" % new_cas) == b"HD\r\n"
    assert b.meta(b"mg page v\r\n") == b"VA 5\r\nfresh\r\n"


def test_recache_before_expiry_with_R(memcached_server):
    a, b = connect(memcached_server), connect(memcached_server)
    a.meta(b"ms soon 1 T20\r\nx\r\n")
    assert a.meta(b"mg soon v R10\r\n") == b"VA 1\r\nx\r\n"  # 20 s left: no need yet
    memcached_server.advance_time(12)
    assert a.meta(b"mg soon v R10\r\n") == b"VA 1 W\r\nx\r\n"
    assert b.meta(b"mg soon v R10\r\n") == b"VA 1 Z\r\nx\r\n"


def test_concurrent_readers_get_exactly_one_win(memcached_server):
    clients = [connect(memcached_server) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    replies = []

    def read(client):
        barrier.wait()
        replies.append(client.meta(b"mg herd v N30\r\n"))

    threads = [threading.Thread(target=read, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(replies) == 8
    assert sum(r.startswith(b"VA 0 W") for r in replies) == 1
    assert sum(r.startswith(b"VA 0 Z") for r in replies) == 7


def test_client_connection_speaks_meta_to_the_server(memcached_server):
    """The router's sans-IO client against the real server, quiet pipeline included."""
    conn = ClientConnection()
    sock = connect(memcached_server)
    requests = [build(b"ms", b"p1", b"T60", data=b"one"), build(b"mg", b"p1", b"v", b"q"),
                build(b"mg", b"p2", b"v", b"q", b"k"), build(b"ma", b"p3", b"N0", b"J7", b"v"),
                build(b"md", b"p1", b"q"), build(b"mn", b"")]
    sock.send(b"".join(conn.send(r) for r in requests))
    replies = []
    while conn.in_flight:
        conn.receive_data(sock.sock.recv(65536))
        while (event := conn.next_event()) is not NEED_DATA:
            replies.append(event)
    assert [(r.code, r.value, r.suppressed) for r in replies] == [
        (b"HD", None, False), (b"VA", b"one", False), (b"EN", None, True),
        (b"VA", b"7", False), (b"HD", None, True), (b"MN", None, False)]
