"""The fault proxy in front of a real pymc-server, driven through its control port."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from pymc.lab.fault_proxy import FaultProxyError, FaultProxyProcess, control, control_many
from pymc.lab.wire import parse_address
from tests.conftest import Client, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def upstream(start_server):
    return start_server()


@pytest.fixture
def proxy(upstream):
    with FaultProxyProcess("127.0.0.1:%d" % upstream.port) as started:
        yield started


@pytest.fixture
def connect(proxy):
    clients: list[Client] = []

    def open_client(timeout: float = 5.0) -> Client:
        clients.append(Client(("127.0.0.1", proxy.port), timeout))
        return clients[-1]

    yield open_client
    for client in clients:
        client.close()


def store(client: Client, key: bytes, value: bytes) -> None:
    assert client.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value)) == b"STORED\r\n"


def silent(clients: list[Client], seconds: float) -> bool:
    """Nothing arrives on any of the clients for ``seconds``."""
    readable, _, _ = select.select([c.sock for c in clients], [], [], seconds)
    return not readable


def dropped_at_once(proxy: FaultProxyProcess) -> bool:
    """A new connection is closed (or reset, which can already fail the connect call)."""
    try:
        client = Client(("127.0.0.1", proxy.port))
    except ConnectionResetError:
        return True
    try:
        return client.is_closed()
    finally:
        client.close()


def status(proxy: FaultProxyProcess) -> dict:
    return json.loads(proxy.command("status"))


def test_pass_through_forwards_both_ways_and_counts(proxy, connect):
    client = connect()
    store(client, b"k", b"hello")
    assert client.until_end(b"get k\r\n") == b"VALUE k 0 5\r\nhello\r\nEND\r\n"
    state = status(proxy)
    assert (state["mode"], state["parameter"], state["listening"]) == ("pass", None, True)
    assert state["connections_open"] == 1 and state["connections_total"] == 1
    assert state["bytes_to_upstream"] == len(b"set k 0 0 5\r\nhello\r\nget k\r\n")
    assert state["bytes_to_client"] == len(b"STORED\r\nVALUE k 0 5\r\nhello\r\nEND\r\n")


def test_slow_delays_each_direction_and_keeps_order(proxy, connect):
    client = connect()
    store(client, b"k", b"hello")
    assert proxy.command("slow 200") == "OK"
    assert status(proxy)["mode"] == "slow" and status(proxy)["parameter"] == 200
    started = time.monotonic()
    assert client.until_end(b"get k\r\n") == b"VALUE k 0 5\r\nhello\r\nEND\r\n"
    assert time.monotonic() - started >= 0.35  # 200 ms there and 200 ms back
    for value in (b"1", b"2", b"3"):  # three chunks in flight at once arrive in order
        client.send(b"set k 0 0 1\r\n%s\r\n" % value)
    assert client.until_end(b"get k\r\n") == b"STORED\r\n" * 3 + b"VALUE k 0 1\r\n3\r\nEND\r\n"
    assert proxy.command("pass") == "OK"


def test_hang_forwards_nothing_until_heal_and_loses_nothing(proxy, connect):
    client = connect()
    store(client, b"k", b"hello")
    assert proxy.command("hang") == "OK"
    big = b"x" * 300_000  # more than one socket buffer: back-pressure, not loss
    client.send(b"set big 0 0 %d\r\n%s\r\nget k big\r\n" % (len(big), big))
    late = connect()  # opened while hung: accepted, but upstream is not even connected
    late.send(b"get k\r\n")
    assert silent([client, late], 0.5)
    assert status(proxy)["bytes_to_upstream"] == len(b"set k 0 0 5\r\nhello\r\n")
    assert proxy.command("heal") == "OK"
    assert client.line() == b"STORED\r\n"
    assert client.until_end(b"") == (b"VALUE k 0 5\r\nhello\r\nVALUE big 0 %d\r\n%s\r\nEND\r\n"
                                     % (len(big), big))
    assert late.until_end(b"") == b"VALUE k 0 5\r\nhello\r\nEND\r\n"


def test_refuse_resets_connections_and_heal_reopens_the_same_port(proxy, connect):
    client = connect()
    store(client, b"k", b"hello")
    assert proxy.command("refuse") == "OK"
    assert client.is_closed()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
    assert status(proxy)["listening"] is False
    assert proxy.command("heal") == "OK"
    assert connect().until_end(b"get k\r\n") == b"VALUE k 0 5\r\nhello\r\nEND\r\n"


def test_loss_100_drops_new_connections_and_resets_busy_ones(proxy, connect):
    busy = connect()
    store(busy, b"k", b"hello")
    assert proxy.command("loss 100") == "OK"
    assert dropped_at_once(proxy)
    busy.send(b"get k\r\n")
    assert busy.is_closed()
    assert proxy.command("loss 0") == "OK"
    assert connect().until_end(b"get k\r\n") == b"VALUE k 0 5\r\nhello\r\nEND\r\n"


def test_reset_closes_current_connections_once_and_keeps_the_mode(proxy, connect):
    first, second = connect(), connect()
    store(first, b"k", b"hello")
    store(second, b"j", b"world")
    assert proxy.command("slow 10") == "OK"
    assert proxy.command("reset") == "OK"
    assert first.is_closed() and second.is_closed()
    assert status(proxy)["mode"] == "slow" and status(proxy)["connections_open"] == 0
    assert connect().until_end(b"get k\r\n") == b"VALUE k 0 5\r\nhello\r\nEND\r\n"


def test_client_half_close_still_gets_its_reply(proxy, connect):
    client = connect()
    store(client, b"k", b"hello")
    client.send(b"get k\r\n")
    client.sock.shutdown(socket.SHUT_WR)
    assert client.read_all(idle=2) == b"VALUE k 0 5\r\nhello\r\nEND\r\n"
    assert client.is_closed()


def test_unreachable_upstream_closes_the_client():
    with FaultProxyProcess("127.0.0.1:%d" % free_port()) as proxy:
        assert dropped_at_once(proxy)


def test_malformed_commands_get_error_and_the_proxy_keeps_serving(proxy, connect):
    bad = ["", "bogus", "slow", "slow -1", "slow abc", "slow nan", "slow inf", "slow 1 2",
           "loss 101", "loss", "hang now", "status please", "\x00\xff"]
    for command in bad:
        assert proxy.command(command).startswith("ERROR "), command
    # Several commands in one write, and a second control client at the same time.
    with socket.create_connection(("127.0.0.1", int(proxy.control_address.split(":")[1])),
                                  timeout=5) as first:
        first.sendall(b"bogus\nslow 5\r\n")
        assert control(proxy.control_address, "status").startswith("{")
        replies = b""
        while replies.count(b"\n") < 2:
            replies += first.recv(100)
        assert replies == b"ERROR unknown command 'bogus'; expected one of: pass, heal, " \
                          b"slow <ms>, hang, loss <pct>, refuse, reset, status\nOK\n"
        first.sendall(b"x" * 10_000 + b"\nstatus\n")
        replies = b""
        while replies.count(b"\n") < 2:
            replies += first.recv(1000)
        too_long, state = replies.splitlines()
        assert too_long == b"ERROR command too long" and json.loads(state)["mode"] == "slow"
    assert status(proxy)["mode"] == "slow"
    assert connect().call(b"version\r\n").startswith(b"VERSION ")


def test_stop_leaves_no_process(upstream):
    proxy = FaultProxyProcess("127.0.0.1:%d" % upstream.port).start()
    client = Client(("127.0.0.1", proxy.port))
    assert client.call(b"version\r\n").startswith(b"VERSION ")
    proxy.stop()
    assert proxy.proc.returncode == 0  # SIGTERM is a clean exit
    with pytest.raises(ProcessLookupError):
        os.kill(proxy.pid, 0)
    assert client.is_closed()
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
    proxy.stop()  # twice is fine


def test_bad_arguments_fail_start_with_the_childs_hint():
    with pytest.raises(FaultProxyError) as failure:
        FaultProxyProcess("127.0.0.1:0").start()
    assert "exit status 2" in str(failure.value)
    assert "expected HOST:PORT" in str(failure.value)


def test_named_links_in_one_process_obey_patterns(start_server):
    first, second = start_server(), start_server()
    links = {"a-mc1/a": "127.0.0.1:%d" % first.port, "a-mc1/b": "127.0.0.1:%d" % first.port,
             "a-mc2/b": "127.0.0.1:%d" % second.port}
    with FaultProxyProcess(links=links) as proxy:
        assert set(proxy.links) == set(links)
        clients = {name: Client(parse_address(address)) for name, address in proxy.links.items()}
        for name, client in clients.items():
            assert client.call(b"version\r\n").startswith(b"VERSION "), name
        assert proxy.command("@*/b refuse") == "OK"
        state = json.loads(proxy.command("status"))
        assert {name: s["mode"] for name, s in state.items()} == {
            "a-mc1/a": "pass", "a-mc1/b": "refuse", "a-mc2/b": "refuse"}
        assert clients["a-mc1/b"].is_closed() and clients["a-mc2/b"].is_closed()
        assert clients["a-mc1/a"].call(b"version\r\n").startswith(b"VERSION ")
        assert proxy.command("@a-mc1/* slow 150") == "OK"
        assert json.loads(proxy.command("@a-mc1/b status"))["a-mc1/b"]["mode"] == "slow"
        started = time.monotonic()
        assert clients["a-mc1/a"].call(b"version\r\n").startswith(b"VERSION ")
        assert time.monotonic() - started >= 0.25
        assert proxy.command("@nope pass").startswith("ERROR no link matches 'nope'")
        assert proxy.command("@a-mc2/b slow x") == \
            "ERROR slow: ms must be a number from 0 to 3.6e+06"
        assert control_many(proxy.control_address, ["pass", "@a-mc2/b hang", "bogus"])[:2] == \
            ["OK", "OK"]
        assert json.loads(proxy.command("links"))["a-mc2/b"]["upstream"] == \
            "127.0.0.1:%d" % second.port
        for client in clients.values():
            client.close()


def test_links_file_and_argument_errors(tmp_path, upstream):
    path = tmp_path / "links.json"
    path.write_text(json.dumps({"x/y": {"listen": "127.0.0.1:0",
                                        "upstream": "127.0.0.1:%d" % upstream.port}}))
    proc = subprocess.run([sys.executable, "-m", "pymc.lab.fault_proxy", "--links-file",
                           str(path), "--listen", "127.0.0.1:0"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and "not both" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "pymc.lab.fault_proxy", "--link", "bad"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "NAME=LISTEN,UPSTREAM" in proc.stderr
