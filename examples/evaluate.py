"""Evaluate a model or a checkpoint on a dataset folder, scene by scene.

    python examples/evaluate.py /data/Kalantari17 --dataset kalantari17 --model classic
    python examples/evaluate.py /data/Kalantari17 --dataset kalantari17 \
        --weights runs/checkpoints/last.ckpt --divisor 65536 --csv scores.csv
    python examples/evaluate.py sim --dataset generic --weights local-dir:my_model

Scenes are found with ``hdrzoo.data.datasets.discover_scenes`` (``ROOT/Test`` for
``--split test``), merged whole (or in tiles with ``--tile``) and scored with
``hdrzoo.metrics.evaluate``: PSNR and SSIM on linear values (-L) and after mu-law tone
mapping (-mu), prediction clipped to [0, 1], per scene then averaged. These are the
metrics ``hdrzoo test`` logs; this script adds the per-scene table and a CSV.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

METRICS = ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l")
DATASETS = ("kalantari17", "challenge123", "tel23", "ntire", "generic")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Score a model or checkpoint on every scene of a dataset split.",
        epilog="Example: python examples/evaluate.py /data/Kalantari17 --dataset kalantari17 "
        "--weights last.ckpt --divisor 65536",
    )
    parser.add_argument("root", help="dataset root (holding Training/ and Test/)")
    parser.add_argument("--dataset", choices=DATASETS, required=True, help="layout of the scenes")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test")
    parser.add_argument(
        "--model", default=None, help="model name (default: read from --weights, else classic)"
    )
    parser.add_argument(
        "--weights", default=None, help=".ckpt, local-dir:PATH, hf-hub:org/repo@rev, .safetensors"
    )
    parser.add_argument(
        "--divisor",
        type=int,
        default=None,
        help="16-bit divisor (default: the weights' convention, else 65535)",
    )
    parser.add_argument("--limit", type=int, default=None, help="score only the first N scenes")
    parser.add_argument("--tile", type=int, default=None, help="merge in tiles of this size")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cpu)")
    parser.add_argument("--csv", default=None, help="also write per-scene scores to this CSV")
    return parser.parse_args(argv)


def load_model(args: argparse.Namespace):
    """The model to score: a name, a weights source, or both."""
    import hdrzoo

    if args.weights is None:
        return hdrzoo.load(args.model or "classic", device=args.device)
    if args.model is None:
        # .ckpt and local-dir:/hf-hub: folders name their model themselves.
        return hdrzoo.load(args.weights, device=args.device)
    return hdrzoo.load(args.model, weights=args.weights, device=args.device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import hdrzoo
    from hdrzoo import metrics
    from hdrzoo.data.datasets import discover_scenes

    try:
        model = load_model(args)
        if args.weights is None and any(True for _ in model.parameters()):
            print(
                f"error: {args.model} needs --weights (random weights score nothing)",
                file=sys.stderr,
            )
            return 2
        divisor = args.divisor or model.conventions.get("divisor", 65535)
        scenes = discover_scenes(args.root, args.dataset, args.split)[: args.limit]
        rows = []
        for scene in scenes:
            bracket = hdrzoo.read_bracket(scene, divisor=divisor)
            if bracket.gt is None:
                print(f"{scene}: no ground truth, skipped", file=sys.stderr)
                continue
            hdr = model.merge(bracket, tile=args.tile, device=args.device)
            scores = metrics.evaluate(hdr, bracket.gt, metrics=METRICS)
            rows.append({"scene": str(scene), **scores})
            print(f"{bracket.name}: " + ", ".join(f"{k} {scores[k]:.4f}" for k in METRICS))
    except hdrzoo.HDRZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not rows:
        print("error: no scene with ground truth to score", file=sys.stderr)
        return 1
    means = {k: sum(r[k] for r in rows) / len(rows) for k in METRICS}
    print(f"mean over {len(rows)} scene(s), divisor {divisor}: "
          + ", ".join(f"{k} {means[k]:.4f}" for k in METRICS))  # fmt: skip
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["scene", *METRICS])
            writer.writeheader()
            writer.writerows(rows)
            writer.writerow({"scene": "mean", **means})
        print(f"wrote {Path(args.csv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
