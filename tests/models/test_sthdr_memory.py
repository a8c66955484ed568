"""STHDR's memory claim: an untiled 1000 x 1500 merge on CPU stays under 4 GB peak RSS."""

from __future__ import annotations

import pytest
from _memory import run_memory_benchmark


@pytest.mark.slow
def test_sthdr_merges_1000x1500_on_cpu_under_4_gb_peak_rss():
    result = run_memory_benchmark("sthdr_memory.py", "--height", "1000", "--width", "1500")
    assert result["output_shape"] == [3, 1000, 1500] and result["output_finite"]
    assert result["peak_rss_gib"] * 2**30 < 4e9, result
