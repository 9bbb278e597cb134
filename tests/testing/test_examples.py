"""The sample project's own test suite passes (examples/flask_app: Flask + pymemcache against
pymc's memcached_server fixture)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", ["subprocess", "inprocess"])
def test_flask_example_suite_passes(mode):
    pytest.importorskip("flask", reason="the example needs Flask (pip install flask)")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "examples/flask_app", "-p", "pymc.testing.plugin",
         "-p", "no:cacheprovider", f"--pymc-mode={mode}", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout
