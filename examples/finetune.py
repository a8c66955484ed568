"""Fine-tune a model of the zoo on a folder of your own brackets (with ground truth).

Expected folder (what ``examples/simulate_brackets.py --split`` writes, or your own)::

    ROOT/Training/<scene>/frame_0.png, frame_1.png, ..., exposure.txt, gt.exr
    ROOT/Test/<scene>/...                      (scored before and after fine-tuning)

Any layout ``hdrzoo.read_bracket`` reads works with ``--dataset`` (kalantari17, ...).

    python examples/finetune.py ROOT --model safnet_s --steps 2000 --out my_finetune
    python examples/finetune.py ROOT --weights runs/checkpoints/last.ckpt --steps 500 --out ft

Training runs Lightning's ``Trainer`` on random crops; at the end the script writes
``OUT/last.ckpt`` (resumable with ``hdrzoo.load``) and ``OUT/model/`` (``hdrzoo export``:
``config.json`` + ``model.safetensors`` + ``README.md``, ready for the Hub), and prints
PSNR-mu on the test scenes before and after. For long runs with logging, resuming and
several GPUs use ``hdrzoo fit`` with a config instead (docs: Training).
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

DATASETS = ("generic", "kalantari17", "challenge123", "tel23", "ntire")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fine-tune a learned model on ROOT/Training and score it on ROOT/Test.",
        epilog="Example: python examples/finetune.py sim --model safnet_s --steps 2000 --out ft",
    )
    parser.add_argument("root", help="folder holding Training/ and Test/ scene folders")
    parser.add_argument("--out", required=True, help="output folder (checkpoint and export)")
    parser.add_argument("--model", default="safnet_s", help="model to train (default safnet_s)")
    parser.add_argument(
        "--weights",
        default=None,
        help="start from these weights (.ckpt, local-dir:, hf-hub:, .safetensors, .pth); "
        "default: random initialisation",
    )
    parser.add_argument("--dataset", choices=DATASETS, default="generic", help="scene layout")
    parser.add_argument("--divisor", type=int, default=65535, help="16-bit divisor (65535)")
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps (default 1000)")
    parser.add_argument("--crop-size", type=int, default=128, help="training crop side (128)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (1e-4)")
    parser.add_argument(
        "--perceptual-weight",
        type=float,
        default=0.0,
        help="VGG perceptual loss weight for models that have one (0: offline, no VGG download)",
    )
    parser.add_argument("--eval-limit", type=int, default=None, help="score only N test scenes")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, auto (Lightning)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def build_model(args: argparse.Namespace):
    """The module to fine-tune, with offline-safe loss settings where the model has them."""
    import torch

    import hdrzoo
    from hdrzoo.hub import create_model

    base = type(create_model(args.model))
    accepted = inspect.signature(base.__init__).parameters
    overrides = {}
    if "perceptual_weight" in accepted:
        overrides["perceptual_weight"] = args.perceptual_weight
    if "window_size" in accepted:
        overrides["window_size"] = None  # refine whole crops: any --crop-size works
    model = hdrzoo.load(args.model, weights=args.weights, **overrides)
    if not any(p.requires_grad for p in model.parameters()):
        raise hdrzoo.HDRZooError(f"{args.model} has no learned parameters: nothing to fine-tune")
    lr = args.lr
    model.optimizer_factory = lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    return model.train()


def score(model, scenes, divisor: int) -> float:
    """Mean PSNR-mu (dB) of ``model`` over the scenes, merged whole."""
    import hdrzoo
    from hdrzoo import metrics

    values = []
    for scene in scenes:
        bracket = hdrzoo.read_bracket(scene, divisor=divisor)
        values.append(float(metrics.psnr_mu(model.merge(bracket), bracket.gt)))
    return sum(values) / len(values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    import hdrzoo
    from hdrzoo.data.datasets import BracketDataset, discover_scenes
    from hdrzoo.hub import export

    out = Path(args.out)
    try:
        train_scenes = discover_scenes(args.root, args.dataset, "train")
        test_scenes = discover_scenes(args.root, args.dataset, "test")[: args.eval_limit]
        L.seed_everything(args.seed, verbose=False)
        model = build_model(args)
        before = score(model, test_scenes, args.divisor)
        print(f"before fine-tuning: PSNR-mu {before:.2f} dB on {len(test_scenes)} test scene(s)")
        train_set = BracketDataset(
            train_scenes, divisor=args.divisor, crop_size=args.crop_size, train=True, seed=args.seed
        )
        loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
        trainer = L.Trainer(
            accelerator=args.accelerator,
            devices=1,
            max_steps=args.steps,
            max_epochs=-1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=CSVLogger(out, name="logs"),
            default_root_dir=out,
            enable_checkpointing=False,
            log_every_n_steps=max(1, min(50, args.steps)),
            enable_model_summary=False,
            enable_progress_bar=sys.stderr.isatty(),
        )
        trainer.fit(model, train_dataloaders=loader)
        trainer.save_checkpoint(out / "last.ckpt")
        model.eval()
        after = score(model, test_scenes, args.divisor)
        export(model, out / "model", tag="finetuned")
    except hdrzoo.HDRZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"after {args.steps} step(s): PSNR-mu {after:.2f} dB (before {before:.2f} dB)")
    print(
        f"wrote {out / 'last.ckpt'} and {out / 'model'} (load with hdrzoo.load('local-dir:{out / 'model'}'))"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
