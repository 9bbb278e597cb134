"""memcached's own test files (t/*.t at 1.6.18) against pymc-server, through the shared runner.

Needs the suite (scripts/fetch-memcached-t.sh puts it in .cache/, or set MEMCACHED_T) and
perl's prove. Every file of the shared conformance list runs, metaget.t included.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED

RUNNER = SHARED / "conformance" / "memcached-t" / "run.sh"
SUITE = Path(os.environ.get("MEMCACHED_T", REPO / ".cache" / "memcached-1.6.18"))

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.timeout(1200)
@pytest.mark.skipif(not RUNNER.exists(), reason="shared/conformance not beside the repo")
@pytest.mark.skipif(not (SUITE / "t" / "lib").is_dir(),
                    reason="memcached t/ missing: run scripts/fetch-memcached-t.sh")
@pytest.mark.skipif(shutil.which("prove") is None, reason="needs perl's prove")
def test_memcached_suite_passes(tmp_path):
    listed = [line.split()[0] for line in (RUNNER.parent / "conformance_list.txt").read_text()
              .splitlines() if line.strip() and not line.startswith("#")]
    files = listed
    env = dict(os.environ, MEMCACHED_T=str(SUITE), TEST_TIMEOUT="180",
               MC_SERVER=f"{sys.executable} -m pymc.server -o debugtime")
    proc = subprocess.run(["bash", str(RUNNER), *files], env=env, capture_output=True,
                          text=True, timeout=1150, cwd=tmp_path)
    report = proc.stdout
    assert proc.returncode == 0, report
    assert f"{len(files)} passed, 0 failed" in report
