"""Run a ``benchmarks/*_memory.py`` script in a fresh process and read its JSON line.

A fresh process, so that ``ru_maxrss`` is that merge's own (imports included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_memory_benchmark(script: str, *args: str) -> dict:
    """``python benchmarks/<script> <args>`` -> the JSON object on its last stdout line."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
