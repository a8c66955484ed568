"""Peak memory and time of the tiled merge path on a large image, on CPU.

    python benchmarks/tiled_memory.py --model safnet_s --height 4000 --width 6000 --tile 1024

Runs in a fresh process so that ``ru_maxrss`` (peak resident set size) belongs to this
merge alone. The frames are random (speed and memory do not depend on content). Prints and
optionally writes a JSON line. Not a test: timings and memory are never asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

import hdrzoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="safnet_s")
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--json", default=None, help="append the result as a JSON line to this file"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = hdrzoo.load(args.model)
    generator = torch.Generator().manual_seed(0)
    ldr = torch.rand(3, 3, args.height, args.width, generator=generator)
    bracket = hdrzoo.Bracket(ldr, torch.tensor([1.0, 4.0, 16.0]), 1)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    hdr = model.merge(bracket, tile=args.tile, overlap=args.overlap)
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    result = {
        "model": args.model,
        "size": [args.height, args.width],
        "tile": args.tile,
        "overlap": args.overlap,
        "threads": args.threads,
        "seconds": round(seconds, 2),
        "peak_rss_gib": round(peak_gib, 3),
        "rss_before_merge_gib": round(baseline_rss / 2**20, 3),
        "output_finite": bool(torch.isfinite(hdr).all()),
    }
    print(json.dumps(result))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
