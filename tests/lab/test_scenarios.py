"""Every lab scenario passes against a real default topology (real processes on loopback)."""

from __future__ import annotations

import pytest

from pymc.lab.runner import Lab
from pymc.lab.scenarios import SCENARIOS, run_scenario

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab.create(None, tmp_path_factory.mktemp("lab"), base_port=0)
    lab.up()
    yield lab
    lab.down()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_passes(lab, name, capsys):
    lines: list[str] = []
    result = run_scenario(name, lab, out=lines.append)
    narration = "\n".join(lines)
    assert result.passed, narration
    assert result.checks and not result.error
    # the lab is healthy again for the next scenario: no router holds a server TKO
    assert not [state for r in lab.node_names("router")
                for state in lab.suspect_servers(r).values() if "status:tko" in state]


def test_default_topology_stays_within_600_mb_after_the_scenarios(lab):
    total = sum(node.get("rss_mb") or 0 for node in lab.status())
    print(f"lab RSS after all scenarios: {total:.0f} MB")
    assert 0 < total < 600
