"""Merge a camera or phone bracket whose exposure times come from EXIF.

Put the frames of one bracket (JPEG, PNG or TIFF, same size, tripod or hand-held) in one
folder. Without an ``exposure.txt`` there, ``hdrzoo.read_bracket`` reads each frame's EXIF
``ExposureTime``; with one, the file wins (one EV per frame, in file-name order).

    python examples/merge_camera_bracket.py my_bracket/ --out merged.exr --preview merged.png
    python examples/merge_camera_bracket.py my_bracket/ --model safnet_s --weights last.ckpt \
        --out merged.exr --tile 1024

The frames are read in sorted file-name order; the reference (whose geometry the result
keeps) is the middle frame unless ``--ref`` says otherwise. Before merging, the script
checks the warning signs of wrong exposures: frames must get brighter as the exposure
time grows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Merge one bracket folder (exposure times from EXIF or exposure.txt) into HDR.",
        epilog="Example: python examples/merge_camera_bracket.py bracket/ --out hdr.exr --preview hdr.png",
    )
    parser.add_argument("folder", help="folder holding the frames of one bracket")
    parser.add_argument("--out", required=True, help="output HDR file (.exr or .hdr)")
    parser.add_argument("--preview", default=None, help="also write a tone-mapped 8-bit PNG here")
    parser.add_argument("--model", default="classic", help="model name (default: classic)")
    parser.add_argument(
        "--weights", default=None, help="weights for a learned model (.ckpt, local-dir:, hf-hub:)"
    )
    parser.add_argument("--ref", type=int, default=None, help="reference frame index")
    parser.add_argument("--tile", type=int, default=None, help="tile size in pixels for big images")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cpu)")
    return parser.parse_args(argv)


def exposure_warnings(bracket) -> list[str]:
    """Warning signs that the exposure times do not belong to these frames."""
    import torch

    problems = []
    order = torch.argsort(bracket.exposures)
    # A longer exposure gathers more light, so every frame's mean level must exceed the
    # previous one's (clipping flattens the growth but never reverses it).
    means = [float(bracket.ldr[i].mean()) for i in order]
    if any(b <= a for a, b in zip(means, means[1:])):
        problems.append(
            "frames do not get brighter as the exposure time grows (mean levels "
            f"{[round(m, 3) for m in means]} in exposure order): the times or the frame order "
            "are wrong"
        )
    ratio = float(bracket.exposures.max() / bracket.exposures.min())
    if ratio > 2**10:
        problems.append(f"the exposures span {ratio:.0f}x (> 10 stops): are they EVs or seconds?")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import hdrzoo

    out = Path(args.out)
    if out.suffix.lower() not in (".exr", ".hdr"):
        print(f"error: --out must end in .exr or .hdr, got {out.name}", file=sys.stderr)
        return 2
    try:
        bracket = hdrzoo.read_bracket(args.folder, ref=args.ref, layout="generic")
        source = bracket.meta["exposure_source"]
        print(
            f"{bracket.num_frames} frames {bracket.size[0]}x{bracket.size[1]} "
            f"({bracket.meta['bit_depth']}-bit) from {args.folder}: {bracket.meta['frames']}"
        )
        print(f"relative exposure times {bracket.exposures.tolist()} (from {source})")
        print(f"reference frame {bracket.ref}: {bracket.meta['frames'][bracket.ref]}")
        for problem in exposure_warnings(bracket):
            print(f"warning: {problem}", file=sys.stderr)
        model = hdrzoo.load(args.model, weights=args.weights, device=args.device)
        if args.weights is None and any(True for _ in model.parameters()):
            print(
                f"error: {args.model} has learned parameters; pass --weights (or use classic)",
                file=sys.stderr,
            )
            return 2
        hdr = model.merge(bracket, tile=args.tile, device=args.device)
        hdrzoo.write_hdr(out, hdr)
        if args.preview:
            hdrzoo.write_preview(args.preview, hdr)
    except hdrzoo.HDRZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"wrote {out}: linear HDR {tuple(hdr.shape)}, values {float(hdr.min()):.4g} .. "
        f"{float(hdr.max()):.4g} (1 = white in the shortest exposure)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
