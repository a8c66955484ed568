"""Simulate moving, bracketed exposures from your own HDR image.

Each scene is ``hdrzoo.data.synthetic.synthesize`` run on your radiance map (a random crop
of it, a small camera shake and moving textured objects, noise, clipping, a camera response,
quantisation) and written in the generic layout ``hdrzoo.read_bracket`` reads back:
``frame_0.png ...``, ``exposure.txt`` (one EV per frame), ``gt.exr`` (the linear ground truth
in the reference frame's geometry).

    python examples/simulate_brackets.py my_scene.exr --out sim --count 20
    python examples/simulate_brackets.py my_scene.hdr --out sim --split 16 4   # Training/ + Test/

The folders from ``--split`` are what ``examples/finetune.py`` and
``examples/evaluate.py --dataset generic`` expect.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Simulate bracketed exposures of a moving scene from an HDR image (.exr/.hdr).",
        epilog="Example: python examples/simulate_brackets.py scene.exr --out sim --split 16 4",
    )
    parser.add_argument(
        "radiance",
        help="your HDR image (.exr or .hdr, linear), or 'assets' for the packaged panoramas",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--count", type=int, default=8, help="number of scenes (default 8)")
    parser.add_argument(
        "--split",
        type=int,
        nargs=2,
        metavar=("TRAIN", "TEST"),
        default=None,
        help="write TRAIN scenes to OUT/Training and TEST to OUT/Test (overrides --count)",
    )
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument(
        "--evs", type=float, nargs="+", default=[-2.0, 0.0, 2.0], help="EV per frame, ascending"
    )
    parser.add_argument("--bit-depth", type=int, choices=(8, 16), default=16)
    parser.add_argument("--crf", choices=("gamma", "s-curve"), default="gamma")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    parser.add_argument("--overwrite", action="store_true", help="replace existing scenes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from hdrzoo import HDRZooError
    from hdrzoo.data.synthetic import synthesize
    from hdrzoo.io import write_bracket

    if args.radiance != "assets" and not Path(args.radiance).is_file():
        print(f"error: {args.radiance} is not a file; pass an .exr or .hdr image", file=sys.stderr)
        return 2
    if args.split is not None:
        plan = [("Training", args.split[0]), ("Test", args.split[1])]
    else:
        plan = [("", args.count)]
    if any(count < 1 for _, count in plan):
        print("error: scene counts must be >= 1", file=sys.stderr)
        return 2

    seed = args.seed
    written = 0
    try:
        for folder, count in plan:
            for _ in range(count):
                bracket = synthesize(
                    seed,
                    radiance=args.radiance,
                    size=tuple(args.size),
                    evs=tuple(args.evs),
                    bit_depth=args.bit_depth,
                    crf=args.crf,
                )
                scene = Path(args.out) / folder / f"scene_{seed:05d}"
                write_bracket(
                    scene,
                    bracket,
                    layout="generic",
                    gt_format=".exr",
                    bit_depth=args.bit_depth,
                    overwrite=args.overwrite,
                )
                saturated = float(bracket.meta["saturated"][bracket.ref])
                print(
                    f"{scene}: exposures {bracket.exposures.tolist()}, reference {bracket.ref}, "
                    f"{100 * saturated:.1f} % of the reference saturated"
                )
                seed += 1
                written += 1
    except HDRZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {written} scene(s) under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
