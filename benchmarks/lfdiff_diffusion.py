"""LF-Diff's cost split as the paper reports it: the diffusion part against the rest.

The diffusion part is LPENet_DM (the condition D from F_0) plus S DDIM denoiser steps at
1/4 resolution; the rest is the alignment and DHRNet at full resolution. One whole merge
(``model.merge``, untiled, S = 10 unless ``--merge-steps`` says otherwise) is timed and
its peak RSS read; the diffusion part is then timed alone at every S of ``--steps`` on the
F_0 of the same bracket (after one warm-up step), and the rest is the merge minus its
diffusion part. The merge is a first call, as a user's single merge is.

    python benchmarks/lfdiff_diffusion.py                       # 1000 x 1500, S = 5, 10, 20
    python benchmarks/lfdiff_diffusion.py --height 256 --width 384 --json out.json

The network is the untrained default ``lfdiff`` (cost does not depend on the weights); the
frames are random. CPU, ``torch.set_num_threads(--threads)``, ``torch.inference_mode``.
Run it in a fresh process: the peak RSS (``ru_maxrss``) covers everything the process did,
and it is read right after the merge, before the diffusion-only runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path
from typing import Any

import torch

import hdrzoo
from hdrzoo.ops.windows import pad_to_multiple


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def time_diffusion(net: torch.nn.Module, f0: torch.Tensor, steps: int) -> float:
    """Seconds for LPENet_DM(F_0) plus ``steps`` DDIM steps of the denoiser."""
    net.sampling_steps = steps
    start = time.perf_counter()
    condition = net.lpenet_dm(f0)
    z_T, generator = net._start_noise(condition)
    net.sample_prior(condition, z_T, generator)
    return time.perf_counter() - start


def run(height: int, width: int, steps: list[int], merge_steps: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = hdrzoo.load("lfdiff", sampling_steps=merge_steps)
    net = model.net
    generator = torch.Generator().manual_seed(0)
    bracket = hdrzoo.Bracket(
        torch.rand(3, 3, height, width, generator=generator), torch.tensor([1.0, 4.0, 16.0]), 1
    )
    with torch.inference_mode():
        start = time.perf_counter()
        hdr = model.merge(bracket)
        merge_seconds = time.perf_counter() - start
        peak_gib = _peak_rss_gib()
        ldr, _ = pad_to_multiple(bracket.ldr[None], net.size_multiple)
        exposures = bracket.exposures[None]
        f0, _ = net.align(*net.encode_inputs(ldr, exposures, torch.tensor([1])))
        time_diffusion(net, f0, 1)  # warm-up: the merge ran these layers at this size once
        diffusion = {s: time_diffusion(net, f0, s) for s in sorted({*steps, merge_steps})}
    rest = merge_seconds - diffusion[merge_steps]
    return {
        "model": "lfdiff",
        "size": [height, width],
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "torch": torch.__version__,
        "merge_steps": merge_steps,
        "merge_seconds": round(merge_seconds, 2),
        "merge_peak_rss_gib": round(peak_gib, 3),
        "rest_seconds": round(rest, 2),
        "diffusion_seconds": {str(s): round(diffusion[s], 3) for s in steps},
        "merge_seconds_at": {str(s): round(rest + diffusion[s], 2) for s in steps},
        "output_finite": bool(torch.isfinite(hdr).all()),
    }


def print_table(result: dict[str, Any]) -> None:
    height, width = result["size"]
    print(
        f"LF-Diff, {height} x {width}, CPU, {result['threads']} threads "
        f"(merge at S = {result['merge_steps']}: {result['merge_seconds']:.1f} s, "
        f"peak RSS {result['merge_peak_rss_gib']:.2f} GiB)"
    )
    print(f"{'S':>4} {'diffusion s':>12} {'rest s':>8} {'merge s':>8} {'diffusion %':>12}")
    for s, seconds in result["diffusion_seconds"].items():
        total = result["merge_seconds_at"][s]
        share = 100 * seconds / total
        print(
            f"{s:>4} {seconds:>12.2f} {result['rest_seconds']:>8.1f} {total:>8.1f} {share:>11.1f}%"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--merge-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(args.height, args.width, args.steps, args.merge_steps)
    print_table(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
