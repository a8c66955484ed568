"""STHDR's memory claim: an untiled 1000 x 1500 merge on CPU stays under 4 GB peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sthdr_merges_1000x1500_on_cpu_under_4_gb_peak_rss():
    # A fresh process, so that ru_maxrss is this merge's own (imports included).
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/sthdr_memory.py"),
            "--height",
            "1000",
            "--width",
            "1500",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["output_shape"] == [3, 1000, 1500] and result["output_finite"]
    assert result["peak_rss_gib"] * 2**30 < 4e9, result
