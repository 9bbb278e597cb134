"""The two-DC lab in containers, end to end: build the Debian base image (mmdebstrap) and the
app image from a wheelhouse, bring the Compose project up, run the lab's scenarios against it
(docker kill, docker pause, docker network disconnect), add WAN latency through the fault
proxies, and take it down leaving no container or network behind.

Needs a Docker engine (``.ci/run`` installs docker.io, docker-compose and mmdebstrap and starts
dockerd as root); skipped without one. Containers are reached only through their published
127.0.0.1 ports.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import time

import pytest

from pymc.lab import compose, compose_cli
from pymc.lab.containers import ContainerLab, compose_command, docker
from pymc.lab import scenarios
from pymc.lab.scenarios import run_scenario

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1200)]


def _engine_problem() -> str:
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if done.returncode != 0:
        return "no Docker engine: " + done.stderr.decode(errors="replace").strip()[:200]
    if shutil.which("mmdebstrap") is None:
        return "no mmdebstrap (apt-get install mmdebstrap)"
    try:
        compose_command()
    except Exception as exc:  # noqa: BLE001 - the reason is the skip message
        return str(exc)
    return ""


PROBLEM = _engine_problem()
if PROBLEM:
    pytestmark.append(pytest.mark.skip(reason=f"compose test needs Docker: {PROBLEM}"))


def _free_subnet() -> str:
    """A /16 no Docker network uses (a user's own compose project may hold 172.30/16)."""
    used = []
    for network_id in docker("network", "ls", "-q").split():
        for item in json.loads(docker("network", "inspect", network_id)):
            for config in (item.get("IPAM") or {}).get("Config") or []:
                if config.get("Subnet"):
                    used.append(ipaddress.ip_network(config["Subnet"], strict=False))
    for candidate in ("172.29.0.0/16", "172.28.0.0/16", "10.231.0.0/16", "10.232.0.0/16"):
        net = ipaddress.ip_network(candidate)
        if not any(net.overlaps(other) for other in used if other.version == 4):
            return candidate
    pytest.skip("no free /16 for the test networks")


def _call(address: str, data: bytes) -> tuple[bytes, float]:
    """The reply to ``data`` and the seconds it took."""
    started = time.monotonic()
    reply = scenarios._call(address, data, timeout=5.0)
    return reply, time.monotonic() - started


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lines: list[str] = []
    started = time.monotonic()
    compose_cli.build(offline=True, base_image=None, image="pymc:local",
                      progress=lines.append)
    built = time.monotonic() - started
    project = f"pymctest{int(time.time()) % 100000}"
    directory = tmp_path_factory.mktemp("compose")
    cplan = compose.container_plan(None, _free_subnet(), host_port_base=0, project=project)
    compose.generate(cplan, directory)
    lab = ContainerLab.attach(directory)
    lab.build_seconds = built
    started = time.monotonic()
    try:
        lab.up(progress=lines.append)
        lab.up_seconds = time.monotonic() - started
        yield lab
    finally:
        lab.down()


def test_compose_file_is_valid_for_the_installed_compose(lab):
    done = subprocess.run([*compose_command(), "-f", str(lab.dir / "docker-compose.yml"),
                           "config", "-q"], cwd=lab.dir, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_container_is_up_healthy_and_published_on_loopback_only(lab):
    def health():
        lab._forget()
        return {name: item["State"].get("Health", {}).get("Status")
                for name, item in lab.containers().items()}
    deadline = time.monotonic() + 60
    while set(health().values()) != {"healthy"} and time.monotonic() < deadline:
        time.sleep(1)
    assert set(health().values()) == {"healthy"}, health()
    assert len(health()) == len(lab.nodes) == 18
    for name, item in lab.containers().items():
        bindings = [b for ports in item["NetworkSettings"]["Ports"].values() for b in ports or []]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), name
    router = lab.router_addresses("eqiad")[0]
    assert router.startswith("127.0.0.1:")
    assert _call(router, b"set /codfw/mw/hello 0 0 2\r\nhi\r\n")[0] == b"STORED\r\n"
    codfw = lab.router_addresses("codfw")[0]
    assert _call(codfw, b"get hello\r\n")[0].startswith(b"VALUE hello 0 2")
    print(f"build {lab.build_seconds:.1f} s, up {lab.up_seconds:.1f} s")


@pytest.mark.parametrize("name", ["shard-down", "shard-hang", "dc-partition"])
def test_scenario_passes_in_containers(lab, name, capsys):
    result = run_scenario(name, lab, out=print, scale=0.5)
    output = capsys.readouterr().out
    with capsys.disabled():
        print(f"\n{name}: {'PASS' if result.passed else 'FAIL'} {result.numbers}")
    assert result.passed, output
    if name == "shard-hang":
        assert "paused eqiad-mc3 (docker pause)" in output
    if name == "dc-partition":
        assert "disconnected from the wan network" in output


def test_wan_latency_delays_only_cross_dc_requests(lab):
    router = lab.router_addresses("eqiad")[0]
    request = b"set /%s/mw/latency 0 0 1\r\nx\r\n"
    try:
        print(lab.wan_latency(60))
        remote = min(_call(router, request % b"codfw")[1] for _ in range(5))
        local = min(_call(router, request % b"eqiad")[1] for _ in range(5))
    finally:
        lab.heal()
    assert remote >= 0.12, f"a cross-DC set took {remote * 1000:.0f} ms with 60 ms each way"
    assert local < 0.06, f"a local set took {local * 1000:.0f} ms"
    after = min(_call(router, request % b"codfw")[1] for _ in range(5))
    assert after < 0.06


def test_metrics_are_published_on_loopback(lab):
    import urllib.request
    for name in ("eqiad-router1", "codfw-gutter2"):
        address = lab.node(name)["metrics"]
        assert address.startswith("127.0.0.1:")
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        assert ("mcrouter_up 1" if "router" in name else "memcached_up 1") in text


def test_lab_status_reads_the_containers(lab):
    from pymc.lab.status import collect
    rows = {row["name"]: row for row in collect(lab)}
    assert all(row["up"] and row["process"] == "running" for row in rows.values()), rows
    assert rows["eqiad-mc1"]["rss_mb"] > 5


def test_zz_down_leaves_nothing(lab):
    lab.down()
    assert lab.containers() == {}
    assert not docker("network", "ls", "-q", "--filter",
                      f"label=com.docker.compose.project={lab.project}").split()
