"""Time the synthetic bracket generator: milliseconds per sample, median of N, one CPU thread.

Usage::

    python benchmarks/synthetic_speed.py                 # 3 frames, 256 x 256, assets
    python benchmarks/synthetic_speed.py --size 128 --frames 5 --radiance procedural

The target (DATA.md / the data brief) is well under 50 ms for a 3-frame 256 x 256 sample
on one core. The first call reads and caches the radiance map and is timed separately.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from hdrzoo.data.synthetic import SyntheticConfig, synthesize


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="square frame size in pixels")
    parser.add_argument("--frames", type=int, default=3, help="frames per bracket")
    parser.add_argument("--radiance", default="assets", help="'assets', 'procedural' or a path")
    parser.add_argument("-n", "--samples", type=int, default=50, help="timed samples")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    config = SyntheticConfig(
        size=(args.size, args.size), n_frames=args.frames, radiance=args.radiance
    )
    start = time.perf_counter()
    synthesize(0, config)
    first_ms = (time.perf_counter() - start) * 1e3

    wall, cpu = [], []
    for seed in range(1, args.samples + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        synthesize(seed, config)
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)

    result = {
        "size": args.size,
        "frames": args.frames,
        "radiance": args.radiance,
        "threads": args.threads,
        "samples": args.samples,
        "first_call_ms": round(first_ms, 2),
        "median_ms": round(statistics.median(wall), 2),
        "p90_ms": round(sorted(wall)[int(0.9 * (len(wall) - 1))], 2),
        "median_cpu_ms": round(statistics.median(cpu), 2),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"synthesize: {args.frames} frames {args.size}x{args.size} ({args.radiance}), "
            f"{args.threads} thread(s): median {result['median_ms']} ms/sample "
            f"(p90 {result['p90_ms']}, cpu {result['median_cpu_ms']}; first call "
            f"{result['first_call_ms']} ms incl. loading), n={args.samples}"
        )
    return result


if __name__ == "__main__":
    main()
