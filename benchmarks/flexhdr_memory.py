"""Peak memory and time of one FlexHDR merge on CPU: the default against the whole-image head.

    python benchmarks/flexhdr_memory.py --height 1000 --width 1500
    python benchmarks/flexhdr_memory.py --height 256 --width 384 --head-pixels none
    python benchmarks/flexhdr_memory.py --height 256 --width 384 --compare

The default merges as a user does (``hdrzoo.load("flexhdr").merge(bracket)``, no tile
argument): flows for the whole image, the attention and merge networks in exact halo tiles
of ``head_pixels`` frame-pixels. ``--head-pixels none`` runs them on the whole image at
once (the path before tiling; about 14 GiB per megapixel at 3 frames, so keep it small);
``--compare`` runs both, each in its own process, and prints both lines. Runs in a fresh
process so that ``ru_maxrss`` (peak resident set size) belongs to this merge alone; the frames are random and the weights untrained (memory and time do not depend
on either). Prints one JSON line; ``tests/models/test_flexhdr_memory.py`` (slow) runs it
and checks the 4 GB bound. Not a test: timings are never asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

import hdrzoo
from hdrzoo.models.flexhdr import HEAD_PIXELS
from hdrzoo.ops.halo import halo_tiles


def head_pixels_arg(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--head-pixels",
        type=head_pixels_arg,
        default=HEAD_PIXELS,
        help=f"frame-pixels per tile of the attention and merge networks (default {HEAD_PIXELS}); "
        "'none' for the whole image at once",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run the default and the whole-image head, each in a fresh process",
    )
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    overrides = {} if args.head_pixels == HEAD_PIXELS else {"head_pixels": args.head_pixels}
    model = hdrzoo.load("flexhdr", **overrides)
    generator = torch.Generator().manual_seed(0)
    ldr = torch.rand(args.frames, 3, args.height, args.width, generator=generator)
    exposures = 4.0 ** torch.arange(args.frames, dtype=torch.float32)
    bracket = hdrzoo.Bracket(ldr, exposures, args.frames // 2)
    rss_before_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    start = time.perf_counter()
    hdr = model.merge(bracket)
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    # The tiles the network used: merge pads to multiples of 8 first.
    height, width = (-(-size // 8) * 8 for size in (args.height, args.width))
    net = model.net
    tile = net.head_tile(height, width, args.frames)
    result = {
        "model": "flexhdr",
        "size": [args.height, args.width],
        "frames": args.frames,
        "head_pixels": net.head_pixels,
        "head_tile": list(tile),
        "head_tiles": len(halo_tiles(height, width, tile, net.head_halo)),
        "threads": args.threads,
        "seconds": round(seconds, 2),
        "peak_rss_gib": round(peak_gib, 3),
        "rss_before_merge_gib": round(rss_before_gib, 3),
        "output_shape": list(hdr.shape),
        "output_finite": bool(torch.isfinite(hdr).all()),
    }
    print(json.dumps(result))


def compare(args: argparse.Namespace) -> None:
    """Run this script once per path in a fresh process (ru_maxrss is per process)."""
    common = [sys.argv[0], "--height", str(args.height), "--width", str(args.width)]
    common += ["--frames", str(args.frames), "--threads", str(args.threads)]
    for head_pixels in (str(HEAD_PIXELS), "none"):
        done = subprocess.run(
            [sys.executable, *common, "--head-pixels", head_pixels],
            capture_output=True,
            text=True,
            check=True,
        )
        print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
