"""The default two-DC lab with real processes: up, healthy, traffic through each DC, every
fault observable and healable, down leaving nothing behind."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import psutil
import pytest

from pymc.lab.runner import Lab, LabError, NoLab
from pymc.lab.topology import PortInUse
from pymc.lab.wire import parse_address
from tests.conftest import Client

pytestmark = pytest.mark.lab


def client(address: str, timeout: float = 5.0) -> Client:
    return Client(parse_address(address), timeout)


def call(address: str, data: bytes) -> bytes:
    c = client(address)
    try:
        return c.until_end(data) if data.startswith(b"get") else c.call(data)
    finally:
        c.close()


def set_(address: str, key: str, value: str) -> bytes:
    return call(address, b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value.encode()))


def get(address: str, key: str) -> bytes:
    return call(address, b"get %s\r\n" % key.encode())


def hit(key: str, value: str) -> bytes:
    return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key.encode(), len(value), value.encode())


def key_on(lab: Lab, server: str, stem: str = "k") -> str:
    dc = lab.node(server)["dc"]
    kind = lab.node(server)["kind"]
    for i in range(10_000):
        if lab.shard(f"{stem}{i}", dc, kind) == server:
            return f"{stem}{i}"
    raise AssertionError(server)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def eventually(check, timeout: float = 8.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab_dir = tmp_path_factory.mktemp("lab")
    lab = Lab.create(None, lab_dir, base_port=0)
    lines: list[str] = []
    started = time.monotonic()
    lab.up(progress=lines.append)
    lab.up_seconds = time.monotonic() - started
    lab.progress_lines = lines
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def healed(lab):
    yield lab
    lab.heal()


def test_up_is_fast_healthy_and_recorded(lab):
    assert lab.up_seconds < 10
    assert lab.progress_lines[0].startswith("starting 18 processes")
    assert lab.progress_lines[-1].startswith("lab up in")
    rows = lab.status()
    assert len(rows) == 18 and all(row["up"] for row in rows), rows
    assert all(row["tko"] == {} for row in rows if row["kind"] == "router")
    assert all(row["items"] == 0 for row in rows if row["kind"] == "server")
    # Another process sees the same lab.
    attached = Lab.attach(lab.dir)
    assert attached.router_addresses("codfw") == lab.router_addresses("codfw")
    assert sorted(attached.running_nodes()) == sorted(n["name"] for n in lab.nodes)
    assert (lab.dir / "configs" / "eqiad-mcrouter.json").exists()
    assert (lab.dir / "logs" / "eqiad-router1.log").exists()
    rss = sum(row["rss_mb"] for row in rows)
    assert rss < 600, rss


def test_set_and_get_through_each_dc_land_on_the_hashed_shard(lab):
    for dc in lab.dcs:
        for i, router in enumerate(lab.router_addresses(dc)):
            key = f"{dc}:key:{i}"
            assert set_(router, key, "v") == b"STORED\r\n"
            assert get(lab.router_addresses(dc)[-1 - i], key) == hit(key, "v")
            assert get(lab.server_address(lab.shard(key, dc)), key) == hit(key, "v")
    other = lab.router_addresses("codfw")[0]
    assert set_(other, "/eqiad/mw/remote", "r") == b"STORED\r\n"
    assert get(lab.server_address(lab.shard("remote", "eqiad")), "remote") == hit("remote", "r")


def test_broadcast_wan_set_reaches_both_dcs(lab):
    router = lab.router_addresses("eqiad")[1]
    assert set_(router, "/*/mw-wan/purge:1", "T") == b"STORED\r\n"
    for dc in lab.dcs:
        server = lab.server_address(lab.shard("purge:1", dc))
        assert eventually(lambda: get(server, "purge:1") == hit("purge:1", "T"), 3)


def test_kill_tko_gutter_and_heal(healed):
    lab = healed
    router = lab.router_addresses("eqiad")[0]
    key = key_on(lab, "eqiad-mc1")
    assert set_(router, key, "before") == b"STORED\r\n"
    old_pid = lab.node("eqiad-mc1")["pid"]
    assert "killed" in lab.fail("eqiad-mc1", "kill")
    assert not alive(old_pid)
    assert get(router, key) == b"END\r\n"  # hard TKO at once, the gutter misses
    assert lab.suspect_servers("eqiad-router1")["eqiad-mc1"].startswith("status:tko")
    assert set_(router, key, "gutter") == b"STORED\r\n"
    assert get(router, key) == hit(key, "gutter")
    gutter = lab.shard(key, "eqiad", "gutter")
    assert get(lab.server_address(gutter), key) == hit(key, "gutter")
    status = {row["name"]: row for row in lab.status()}
    assert status["eqiad-mc1"]["up"] is False and status["eqiad-mc1"]["fault"] == "kill"
    assert "eqiad-mc1" in status["eqiad-router1"]["tko"]
    lab.heal("eqiad-mc1")
    assert lab.node("eqiad-mc1")["pid"] != old_pid and alive(lab.node("eqiad-mc1")["pid"])
    # The probe ends the TKO; the shard is back (empty: it restarted).
    assert eventually(lambda: "eqiad-mc1" not in lab.suspect_servers("eqiad-router1"))
    assert get(router, key) == b"END\r\n"
    assert set_(router, key, "after") == b"STORED\r\n"
    assert get(lab.server_address("eqiad-mc1"), key) == hit(key, "after")


def test_hang_times_out_then_soft_tko_and_heal(healed):
    lab = healed
    router = lab.router_addresses("codfw")[1]
    key = key_on(lab, "codfw-mc2")
    assert set_(router, key, "v") == b"STORED\r\n"
    lab.fail("codfw-mc2", "hang")
    replies = [get(router, key) for _ in range(4)]
    assert replies[0].startswith(b"SERVER_ERROR") and b"timeout" in replies[0], replies
    assert replies[-1] == b"END\r\n", replies  # soft TKO: the gutter answers (a miss)
    assert "codfw-mc2" in lab.suspect_servers("codfw-router2")
    assert get(lab.server_address("codfw-mc2"), key) == hit(key, "v")  # direct still works
    lab.heal("codfw-mc2")
    assert eventually(lambda: get(router, key) == hit(key, "v"))


def test_slow_adds_latency_on_the_links_only(healed):
    lab = healed
    router = lab.router_addresses("eqiad")[1]
    key = key_on(lab, "eqiad-mc3")
    assert set_(router, key, "v") == b"STORED\r\n"
    lab.fail("eqiad-mc3", "slow", 60)  # well within the routers' 250 ms -t: slow, no error
    started = time.monotonic()
    assert get(router, key) == hit(key, "v")
    assert time.monotonic() - started >= 0.11  # 60 ms there and 60 ms back
    started = time.monotonic()
    assert get(lab.server_address("eqiad-mc3"), key) == hit(key, "v")
    assert time.monotonic() - started < 0.15
    lab.heal("eqiad-mc3")
    started = time.monotonic()
    assert get(router, key) == hit(key, "v")
    assert time.monotonic() - started < 0.15


def test_wan_latency_delays_cross_dc_requests_only(healed):
    lab = healed
    router = lab.router_addresses("eqiad")[0]
    remote, local = key_on(lab, "codfw-mc1", "/codfw/mw/r"), key_on(lab, "eqiad-mc1", "l")
    print(lab.wan_latency(50))
    assert Lab.attach(lab.dir).state["wan_latency_ms"] == 50  # other processes see it
    lab.fail("codfw-mc1", "slow", 20)  # a node's own delay adds to the WAN's
    modes = {row["name"]: row for row in lab.status()}["codfw-proxy"]["links"]
    assert modes["codfw-mc1/eqiad"] == "slow 70" and modes["codfw-mc1/codfw"] == "slow 20"
    assert modes["codfw-mc2/eqiad"] == "slow 50" and modes["codfw-mc2/codfw"] == "pass"
    started = time.monotonic()
    assert set_(router, remote, "v") == b"STORED\r\n"
    assert time.monotonic() - started >= 0.13  # 70 ms there and back
    started = time.monotonic()
    assert set_(router, local, "v") == b"STORED\r\n"
    assert time.monotonic() - started < 0.1
    assert "WAN links no longer delayed" in lab.heal()
    started = time.monotonic()
    assert set_(router, remote, "v") == b"STORED\r\n"
    assert time.monotonic() - started < 0.1
    with pytest.raises(LabError, match="WAN latency"):
        lab.wan_latency(-1)


def test_loss_100_fails_requests_to_the_node(healed):
    lab = healed
    router = lab.router_addresses("codfw")[0]
    key = key_on(lab, "codfw-mc4")
    lab.fail("codfw-mc4", "loss", 100)
    reply = get(router, key)
    assert reply.startswith(b"SERVER_ERROR") or reply == b"END\r\n"  # reset, or TKO → gutter
    assert "codfw-mc4" in lab.suspect_servers("codfw-router1")


def test_partition_cuts_only_the_wan(healed):
    lab = healed
    eqiad, codfw = lab.router_addresses("eqiad")[0], lab.router_addresses("codfw")[0]
    assert "partitioned" in lab.partition("eqiad", "codfw")
    assert set_(eqiad, "local:p", "ok") == b"STORED\r\n"
    assert get(eqiad, "local:p") == hit("local:p", "ok")
    assert set_(codfw, "local:q", "ok") == b"STORED\r\n"
    assert set_(eqiad, "/codfw/mw/remote:p", "x").startswith(b"SERVER_ERROR")
    assert set_(codfw, "/eqiad/mw/remote:q", "x").startswith(b"SERVER_ERROR")
    proxy = {row["name"]: row for row in lab.status()}["eqiad-proxy"]
    assert proxy["links"]["eqiad-mc1/codfw"] == "refuse"
    assert proxy["links"]["eqiad-mc1/eqiad"] == "pass"
    assert lab.partitions == [["codfw", "eqiad"]]
    lab.heal("eqiad")  # a DC name heals its partitions
    assert lab.partitions == []
    assert eventually(lambda: set_(eqiad, "/codfw/mw/remote:p", "x") == b"STORED\r\n")


def test_faults_from_the_command_line(healed):
    lab = healed
    base = [sys.executable, "-m", "pymc", "lab"]
    run = lambda *args: subprocess.run(base + list(args) + ["--dir", str(lab.dir)],
                                       capture_output=True, text=True, timeout=30)
    result = run("fail", "eqiad-gutter2", "slow", "50")
    assert result.returncode == 0, result.stderr
    assert Lab.attach(lab.dir).faults == {"eqiad-gutter2": {"kind": "slow", "arg": 50.0}}
    result = run("status")
    assert result.returncode == 0 and "slow 50" in result.stdout and "18/18 processes up" in \
        result.stdout, result.stdout
    result = run("fail", "eqiad-router1", "slow", "5")
    assert result.returncode == 1 and "applies to servers" in result.stderr
    result = run("heal")
    assert "healed eqiad-gutter2 (slow 50)" in result.stdout
    assert lab.faults == {}  # the lab object sees what another process did
    result = subprocess.run(base + ["status", "--dir", str(lab.dir / "nope")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "pymc lab up --dir" in result.stderr


def test_down_leaves_no_process(tmp_path):
    lab = Lab.create({"dcs": [{"name": "a", "servers": 1, "gutters": 1, "routers": 1},
                              {"name": "b", "servers": 1, "gutters": 1, "routers": 1}]},
                     tmp_path, base_port=0)
    lab.up()
    pids = [n["pid"] for n in lab.nodes]
    assert all(alive(pid) for pid in pids)
    with pytest.raises(LabError, match="already running"):
        Lab.create(None, tmp_path, base_port=0)
    lab.fail("a-mc1", "freeze")  # a stopped process must still go
    stopped = Lab.attach(tmp_path).down()
    assert sorted(stopped) == sorted(n["name"] for n in lab.nodes)
    assert eventually(lambda: not any(alive(pid) for pid in pids), 5)
    with pytest.raises(NoLab, match="not running"):
        Lab.attach(tmp_path).fail("a-mc1", "kill")


def test_failed_up_cleans_up(tmp_path):
    lab = Lab.create({"dcs": [{"name": "a", "servers": 1, "gutters": 1, "routers": 1}],
                      "server": {"args": ["--no-such-flag"]}}, tmp_path, base_port=0)
    with pytest.raises(LabError, match="exited while starting"):
        lab.up()
    pids = [n["pid"] for n in json.loads((tmp_path / "state.json").read_text())["nodes"]]
    assert pids == [None] * len(pids)
    assert not Lab.attach(tmp_path).running_nodes()


def test_port_in_use_fails_before_starting_anything(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        lab = Lab.create({"dcs": [{"name": "a", "servers": 1, "gutters": 1, "routers": 1}]},
                         tmp_path, base_port=sock.getsockname()[1])
        with pytest.raises(PortInUse, match="--base-port"):
            lab.up()
        assert not lab.running_nodes()
    finally:
        sock.close()
