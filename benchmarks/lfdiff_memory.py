"""Peak memory of one untiled LF-Diff merge on CPU (the 1000 x 1500 claim of issue 18).

    python benchmarks/lfdiff_memory.py --height 1000 --width 1500

Runs in a fresh process so that ``ru_maxrss`` (peak resident set size) belongs to this
merge alone; the network is the untrained default ``lfdiff`` (memory depends on the sizes,
not on the weights) and the frames are random. Prints one JSON line.
``tests/models/test_lfdiff_memory.py`` (slow) runs it and checks the 4 GB bound.
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
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sampling-steps", type=int, default=10)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = hdrzoo.load("lfdiff", sampling_steps=args.sampling_steps)
    generator = torch.Generator().manual_seed(0)
    ldr = torch.rand(3, 3, args.height, args.width, generator=generator)
    bracket = hdrzoo.Bracket(ldr, torch.tensor([1.0, 4.0, 16.0]), 1)
    rss_before_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    start = time.perf_counter()
    hdr = model.merge(bracket)
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {
        "model": "lfdiff",
        "size": [args.height, args.width],
        "tile": None,
        "threads": args.threads,
        "sampling_steps": args.sampling_steps,
        "seconds": round(seconds, 2),
        "peak_rss_gib": round(peak_gib, 3),
        "rss_before_merge_gib": round(rss_before_gib, 3),
        "output_shape": list(hdr.shape),
        "output_finite": bool(torch.isfinite(hdr).all()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
