"""The WANObjectCache-like traffic generator: unit tests of its parts, then real runs of a few
seconds against two DCs (two pymc-servers and one pymc-router each), healthy and with the
purges to one DC lost."""

from __future__ import annotations

import random
import time

import pytest

from pymc.lab.traffic import (Database, DCStats, Traffic, TrafficStats, Zipf, _bucket,
                              decode_value, encode_value, main)
from pymc.lab.wancache import WANCache
from tests.conftest import ServerProcess, free_port
from tests.router.conftest import RouterProcess

DCS = ("eqiad", "codfw")


# ---------------------------------------------------------------------------- no server


def test_values_encode_key_and_version():
    value = encode_value("k:1", 7, 1700000000.0, size=100)
    assert len(value) == 100 and decode_value(value) == ("k:1", 7)
    assert decode_value("nonsense") is None and decode_value(None) is None


def test_database_versions_and_when_they_were_superseded():
    now = [100.0]
    db = Database(lambda: now[0])
    assert db.read("a") == (0, 100.0) and db.superseded_at("a", 0) is None
    now[0] = 105.0
    assert db.bump("a") == 1
    now[0] = 107.0
    assert db.bump("a") == 2
    assert db.read("a") == (2, 107.0)
    assert db.superseded_at("a", 0) == 105.0 and db.superseded_at("a", 1) == 107.0
    assert db.superseded_at("a", 2) is None and db.writes == 2


def test_zipf_popularity():
    zipf, rng = Zipf(100), random.Random(1)
    counts = [0] * 100
    for _ in range(20000):
        counts[zipf.sample(rng)] += 1
    assert counts[0] > counts[1] > counts[9] > counts[99] > 0
    assert 0.15 < counts[0] / 20000 < 0.25  # 1/H(100) ≈ 0.19


def test_stats_totals_differences_and_percentiles():
    a = DCStats(reads=10, hits=8, regenerations=2)
    a.errors["server_error"] = 1
    for ms in (1, 1, 1, 1, 1, 1, 1, 1, 1, 50):
        a.latency[_bucket(ms / 1e3)] += 1
    b = DCStats(reads=5, hits=5, stale_beyond=2, purges=3)
    earlier = TrafficStats(1.0, {"eqiad": DCStats(reads=4, hits=4), "codfw": DCStats()})
    later = TrafficStats(3.0, {"eqiad": a, "codfw": b})
    total = later.total
    assert (total.reads, total.hits, total.ops, total.error_count) == (15, 13, 18, 1)
    assert a.p50 == pytest.approx(1e-3, rel=0.03) and a.p99 == pytest.approx(50e-3, rel=0.03)
    interval = later - earlier
    assert interval.elapsed == 2.0 and interval.per_dc["eqiad"].reads == 6
    assert interval.per_dc["eqiad"].hits == 4 and interval.per_dc["codfw"].purges == 3
    data = later.as_dict()
    assert data["total"]["stale_beyond_holdoff"] == 2
    assert data["per_dc"]["codfw"]["stale_beyond_per_sec"] == pytest.approx(2 / 3)
    assert data["total"]["errors_by_kind"] == {"server_error": 1}
    assert "eqiad" in later.progress_line() and "total" in later.summary_table()


# ---------------------------------------------------------------------------- real runs


def dc_config(servers: dict, local: str, lost: str | None = None) -> dict:
    """Both DCs' routes; purges to ``lost`` go nowhere (a WAN link that is down)."""
    routes = []
    for dc in DCS:
        routes.append({"aliases": [f"/{dc}/mw/"], "route": f"PoolRoute|{dc}"})
        routes.append({"aliases": [f"/{dc}/mw-wan/"],
                       "route": "ErrorRoute|wan down" if dc == lost else f"PoolRoute|{dc}"})
    return {"pools": {dc: {"servers": ["127.0.0.1:%d" % s.port for s in servers[dc]]}
                      for dc in DCS},
            "routes": routes}


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    started = []
    try:
        servers = {}
        for dc in DCS:
            servers[dc] = [ServerProcess(["-m", "16"]) for _ in range(2)]
            started.extend(servers[dc])
        tmp = tmp_path_factory.mktemp("traffic")
        routers = {}
        for dc in DCS:
            routers[dc] = RouterProcess(dc_config(servers, dc), ["-R", f"/{dc}/mw/"], tmp)
            started.append(routers[dc])
        partitioned = RouterProcess(dc_config(servers, "eqiad", lost="codfw"),
                                    ["-R", "/eqiad/mw/"], tmp)
        started.append(partitioned)
        broken = RouterProcess({"pools": {}, "route": "ErrorRoute|boom"}, [], tmp)
        started.append(broken)
        yield {"servers": servers, "routers": routers, "partitioned": partitioned,
               "broken": broken}
    finally:
        for process in reversed(started):
            process.stop()


def address(process) -> str:
    return "127.0.0.1:%d" % process.port


def check_consistent(stats: TrafficStats) -> None:
    total = stats.total
    assert total.reads == sum(s.reads for s in stats.per_dc.values())
    for dc_stats in list(stats.per_dc.values()) + [total]:
        assert dc_stats.hits + dc_stats.regenerations + dc_stats.busy == dc_stats.reads
        assert sum(dc_stats.latency) == dc_stats.reads
        assert dc_stats.stale_reads <= dc_stats.reads


@pytest.mark.integration
def test_two_dcs_healthy(topology):
    routers = {dc: [address(topology["routers"][dc])] for dc in DCS}
    traffic = Traffic(routers, keys=200, readers_per_dc=2, writes_per_sec=20, seed=1,
                      holdoff=2.0, ttl=60)
    assert traffic.snapshot().total.reads == 0
    with traffic:
        time.sleep(1.0)
        first = traffic.snapshot()
        window = traffic.window(1.0)
        second = traffic.snapshot()
    final = traffic.stop()  # idempotent
    for stats in (first, window, second, final):
        check_consistent(stats)
    assert 0.9 < window.elapsed < 3 and 0 < window.total.reads <= second.total.reads
    assert first.total.reads < second.total.reads <= final.total.reads
    assert final.elapsed == traffic.stop().elapsed  # frozen after stop
    total = final.total
    for dc in DCS:
        dc_stats = final.per_dc[dc]
        assert dc_stats.reads > 50 and dc_stats.hit_rate > 0.5
        assert dc_stats.error_count == 0 and dc_stats.wrong_values == 0
        assert dc_stats.stale_beyond == 0
    assert total.purges >= 20 and total.purge_failures == 0
    assert total.p50 is not None and total.p50 <= total.p99 < 1.0
    data = final.as_dict()
    assert set(data["per_dc"]) == set(DCS)
    assert data["total"]["reads"] == total.reads and data["total"]["errors"] == 0
    assert "reads" in final.progress_line() and "codfw" in final.summary_table()
    # the purges reached both DCs: a written key is, in each DC, missing, a tombstone or
    # its current version
    time.sleep(0.1)  # the broadcast's background copies
    written = [traffic.key(rank) for rank in range(200)
               if traffic.db.version(traffic.key(rank)) > 0]
    assert written
    for dc in DCS:
        with WANCache(address(topology["routers"][dc])) as cache:
            for key in written:
                value = cache.get(key).value
                assert value is None or decode_value(value) == (key, traffic.db.version(key))


@pytest.mark.integration
def test_lost_purges_show_as_stale_reads_beyond_the_holdoff(topology):
    # eqiad writes; its purges to codfw are lost, codfw keeps serving what it cached
    routers = {"eqiad": [address(topology["partitioned"])],
               "codfw": [address(topology["routers"]["codfw"])]}
    traffic = Traffic(routers, keys=50, readers_per_dc=1, writes_per_sec=20, seed=2,
                      holdoff=1.0, ttl=60, writer_dcs=["eqiad"], stale_grace=0.5)
    with traffic:
        time.sleep(3.5)
    stats = traffic.stop()
    check_consistent(stats)
    eqiad, codfw = stats.per_dc["eqiad"], stats.per_dc["codfw"]
    assert eqiad.purges > 30 and codfw.purges == 0
    assert eqiad.stale_beyond == 0  # the local purges work
    assert codfw.stale_beyond > 0 and codfw.max_stale_age > 1.5
    assert stats.as_dict()["per_dc"]["codfw"]["stale_beyond_per_sec"] > 0
    # the loss is silent: the broadcast's other copies run in the background
    assert stats.total.error_count == 0


@pytest.mark.integration
def test_router_errors_and_dead_routers_are_counted(topology):
    routers = {"eqiad": [address(topology["broken"])], "codfw": ["127.0.0.1:%d" % free_port()]}
    traffic = Traffic(routers, keys=10, readers_per_dc=1, writes_per_sec=10, seed=3,
                      timeout=0.5)
    with traffic:
        time.sleep(0.6)
    stats = traffic.stop()
    check_consistent(stats)
    eqiad, codfw = stats.per_dc["eqiad"], stats.per_dc["codfw"]
    assert eqiad.reads > 0 and eqiad.errors["server_error"] > 0
    assert eqiad.hits == 0 and eqiad.regenerations == eqiad.reads
    assert eqiad.reads_with_errors == eqiad.reads and codfw.reads_with_errors == codfw.reads
    assert codfw.errors["socket:refused"] > 0
    assert codfw.reads < 100  # paused after each refusal instead of spinning
    assert stats.total.purge_failures == stats.total.purges > 0


@pytest.mark.integration
def test_cli_prints_progress_and_a_summary(topology, capsys):
    argv = ["--duration", "1.6", "--keys", "100", "--writes-per-sec", "10", "--holdoff", "2",
            "--interval", "0.5", "--seed", "4"]
    for dc in DCS:
        argv += ["--router", f"{dc}={address(topology['routers'][dc])}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert len(progress) >= 2 and all("reads" in line and "codfw" in line for line in progress)
    table = out.split("\n\n", 1)[1]
    assert table.splitlines()[0].split()[:4] == ["reads", "reads/s", "hit", "rate"]
    assert [line.split()[0] for line in table.splitlines()[1:4]] == ["eqiad", "codfw", "total"]


def test_cli_rejects_bad_routers(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--router", "eqiad"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main([])
    assert "--router" in capsys.readouterr().err
