"""Run the benchmark suite and write ``benchmarks/results/*.json`` + ``docs/benchmarks.md``.

    python benchmarks/run.py            # everything (about 10 minutes on 2 CPU cores)
    python benchmarks/run.py --quick    # smaller sizes, a smoke run of the harness

Each benchmark runs in its own process (so peak RSS is its own): synthetic data speed,
SAFNet / SAFNet-S against the parity-first baseline at 1000 x 1500, and the tiled merge of
a 4000 x 6000 bracket. Timings are never asserted in tests; compare ratios measured in one
process, interleaved.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _run(args: list[str]) -> str:
    print("$", " ".join(args), flush=True)
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)

    synthetic = json.loads(
        _run(
            [str(HERE / "synthetic_speed.py"), "--json", "-n", "10" if args.quick else "50"]
        ).splitlines()[-1]
    )

    size = ["500", "750"] if args.quick else ["1000", "1500"]
    safnet_json = RESULTS / "safnet_speed.json"
    _run(
        [str(HERE / "safnet_speed.py"), "--size", *size, "--json", str(safnet_json)]
        + (["--variants", "s", "--reps", "2"] if args.quick else [])
    )
    safnet = json.loads(safnet_json.read_text())

    height, width = (1000, 1500) if args.quick else (4000, 6000)
    tiled = json.loads(
        _run(
            [
                str(HERE / "tiled_memory.py"),
                "--model",
                "safnet_s",
                "--height",
                str(height),
                "--width",
                str(width),
                "--tile",
                "1024",
            ]
        ).splitlines()[-1]
    )

    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "synthetic": synthetic,
        "safnet_speed": safnet,
        "tiled": tiled,
    }
    (RESULTS / "summary.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
