"""CPU inference speed of hdrzoo's SAFNet-S / SAFNet against the frozen parity-first baseline.

The official SAFNet code is not available in this environment: ``safnet_baseline.py`` (our
first implementation that matched the official outputs, kept unoptimised) stands in for it.

Both networks get the same random weights and the same inputs (the official 6-channel
frames at 1000 x 1500 by default) and run under ``torch.inference_mode`` with
``torch.set_num_threads(2)``. Calls alternate baseline / hdrzoo within one process so that
machine load affects both alike; the reported ratio is median(hdrzoo) / median(baseline).
Peak RSS of one forward of each model is measured in a fresh child process each.

Usage::

    python benchmarks/safnet_speed.py                      # SAFNet-S, 5 reps, and full SAFNet, 2 reps
    python benchmarks/safnet_speed.py --variants s --reps 7 --size 500 750
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from safnet_baseline import BaselineSAFNet  # noqa: E402

from hdrzoo.models.safnet import SAFNet  # noqa: E402


def build_pair(variant: str) -> tuple[BaselineSAFNet, SAFNet]:
    torch.manual_seed(0)
    baseline = BaselineSAFNet(variant).eval()
    ours = SAFNet(variant).eval()
    ours.load_state_dict(baseline.state_dict())
    return baseline, ours


def make_inputs(height: int, width: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ldr = torch.rand(3, 3, height, width, generator=generator)
    times = torch.tensor([1.0, 4.0, 16.0]).view(3, 1, 1, 1)
    frames = torch.cat([ldr.pow(2.2) / times, ldr], dim=1)
    return [frames[i : i + 1].contiguous() for i in range(3)]


def _vm_hwm_mib() -> float:
    # VmHWM belongs to this address space; ru_maxrss would carry over the parent's peak
    # across fork + exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_child(which: str, variant: str, height: int, width: int, threads: int) -> float:
    """Peak RSS (MiB) of a fresh process running one forward of one model (Linux VmHWM)."""
    code = (
        "import sys, resource, torch\n"
        f"sys.argv = [sys.argv[0]]\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); sys.path.insert(0, {str(ROOT)!r})\n"
        "import safnet_speed as s\n"
        f"torch.set_num_threads({threads})\n"
        f"baseline, ours = s.build_pair({variant!r})\n"
        f"net = baseline if {which!r} == 'baseline' else ours\n"
        f"x = s.make_inputs({height}, {width})\n"
        "with torch.inference_mode():\n"
        "    net(*x) if net is baseline else net.forward_images(*x)\n"
        "print(s._vm_hwm_mib())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def time_variant(variant: str, height: int, width: int, reps: int, warmup: int) -> dict:
    baseline, ours = build_pair(variant)
    inputs = make_inputs(height, width)
    times: dict[str, list[float]] = {"baseline": [], "hdrzoo": []}
    with torch.inference_mode():
        for _ in range(warmup):
            baseline(*inputs)
            ours.forward_images(*inputs)
        for rep in range(reps):
            # Alternate which model goes first so that slow drifts of the load cancel out.
            order = ("baseline", "hdrzoo") if rep % 2 == 0 else ("hdrzoo", "baseline")
            for name in order:
                start = time.perf_counter()
                out = baseline(*inputs) if name == "baseline" else ours.forward_images(*inputs)
                times[name].append(time.perf_counter() - start)
                if name == "baseline":
                    reference = out["hdr_r"]
                else:
                    result = out.hdr
        max_diff = float((reference - result).abs().max())
    base, opt = statistics.median(times["baseline"]), statistics.median(times["hdrzoo"])
    return {
        "variant": variant,
        "size": [height, width],
        "reps": reps,
        "baseline_s": times["baseline"],
        "hdrzoo_s": times["hdrzoo"],
        "baseline_median_s": base,
        "hdrzoo_median_s": opt,
        "ratio_median": opt / base,
        "ratio_min": min(times["hdrzoo"]) / min(times["baseline"]),
        "max_abs_diff_hdr": max_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(1000, 1500), metavar=("H", "W"))
    parser.add_argument("--variants", nargs="+", default=["s", "full"], choices=["s", "full"])
    parser.add_argument("--reps", type=int, default=5, help="timed reps for SAFNet-S")
    parser.add_argument("--reps-full", type=int, default=2, help="timed reps for full SAFNet")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS children")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    height, width = args.size
    print(
        "NOTE: the official SAFNet code is not available here; the baseline is hdrzoo's frozen "
        "parity-first implementation (benchmarks/safnet_baseline.py), standing in for it."
    )
    print(f"torch {torch.__version__}, {args.threads} threads, CPU, float32, {height}x{width}")
    results = []
    for variant in args.variants:
        reps = args.reps if variant == "s" else args.reps_full
        result = time_variant(variant, height, width, reps, args.warmup)
        if not args.no_memory:
            result["peak_rss_mib"] = {
                which: peak_rss_child(which, variant, height, width, args.threads)
                for which in ("baseline", "hdrzoo")
            }
        results.append(result)
        name = "SAFNet-S" if variant == "s" else "SAFNet"
        line = (
            f"{name:8s} baseline {result['baseline_median_s']:.3f} s  hdrzoo "
            f"{result['hdrzoo_median_s']:.3f} s  ratio {result['ratio_median']:.3f} "
            f"(min-based {result['ratio_min']:.3f}; {reps} reps)  max |diff| "
            f"{result['max_abs_diff_hdr']:.2e}"
        )
        if "peak_rss_mib" in result:
            rss = result["peak_rss_mib"]
            line += f"  peak RSS baseline {rss['baseline']:.0f} MiB, hdrzoo {rss['hdrzoo']:.0f} MiB"
        print(line, flush=True)
    print(f"this process: peak RSS {_vm_hwm_mib():.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
