"""The ``hdrzoo`` command.

``hdrzoo demo``       synthesise a moving bracket, train briefly, merge, report (the main job)
``hdrzoo merge``      merge scene folders with any model of the zoo
``hdrzoo models``     the table of models and weights
``hdrzoo export``     turn a checkpoint into a Hub-ready folder
``hdrzoo fit|validate|test|predict``  LightningCLI over every model and DataModule
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hdrzoo.errors import HDRZooError

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        try:
            run_lightning_cli(argv)
        except SIGTERMException:
            # Lightning stops a SIGTERM'd run cleanly but as a code-less SystemExit; report it
            # as killed (128 + 15) so schedulers and scripts do not mistake it for success.
            print("hdrzoo: stopped by SIGTERM; resume with --ckpt_path last", file=sys.stderr)
            return 143
        return 0
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except HDRZooError as err:
        print(f"hdrzoo {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    from hdrzoo import __version__

    parser = argparse.ArgumentParser(
        prog="hdrzoo",
        description="Ghost-free HDR from bracketed exposures. Training: hdrzoo fit|validate|test|predict --help",
    )
    parser.add_argument("--version", action="version", version=f"hdrzoo {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="{demo,merge,models,export,fit,validate,test,predict}"
    )

    demo = sub.add_parser(
        "demo", help="synthesise a moving scene, train briefly, merge and compare"
    )
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument(
        "--model", default=None, help="learned model to train (default: the smallest available)"
    )
    demo.add_argument(
        "--minutes", type=float, default=3.0, help="training time budget in minutes (default 3)"
    )
    demo.add_argument("--steps", type=int, default=None, help="stop training after this many steps")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_cmd_demo)

    merge = sub.add_parser("merge", help="merge bracket folders into HDR images")
    merge.add_argument("scenes", nargs="+", help="scene folders, or dataset folders holding scenes")
    merge.add_argument(
        "--model", "-m", default="classic", help="model name, e.g. safnet_s (see `hdrzoo models`)"
    )
    merge.add_argument(
        "--weights",
        "-w",
        default=None,
        help="hf-hub:org/repo, local-dir:PATH, .safetensors, .ckpt, .pth",
    )
    merge.add_argument(
        "--pretrained", action="store_true", help="use the model's default published weights"
    )
    merge.add_argument("--out", "-o", required=True, help="output folder")
    merge.add_argument("--format", choices=("exr", "hdr"), default="exr")
    merge.add_argument("--tile", type=int, default=None, help="tile size in pixels (bounds memory)")
    merge.add_argument(
        "--overlap", type=int, default=64, help="tile overlap in pixels (default 64)"
    )
    merge.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")
    merge.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None)
    merge.add_argument(
        "--compile", action="store_true", help="run the network through torch.compile"
    )
    merge.add_argument(
        "--divisor",
        type=int,
        default=None,
        help="16-bit divisor (default: the weights' convention or 65535)",
    )
    merge.add_argument(
        "--preview", action="store_true", help="also write a tone-mapped PNG per scene"
    )
    merge.add_argument(
        "--overwrite", action="store_true", help="re-merge scenes whose output exists"
    )
    merge.set_defaults(handler=_cmd_merge)

    models = sub.add_parser("models", help="list models, parameters and weights")
    models.add_argument("pattern", nargs="?", default=None, help="glob filter, e.g. 'safnet*'")
    models.set_defaults(handler=_cmd_models)

    export = sub.add_parser(
        "export", help="write config.json + model.safetensors + README.md for the Hub"
    )
    export.add_argument(
        "checkpoint", help="a Lightning .ckpt (or any weights source load() accepts)"
    )
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--tag", default=None, help="weight tag to record, e.g. kalantari17")
    export.set_defaults(handler=_cmd_export)
    return parser


# ------------------------------------------------------------------- merge -------
def _expand_scenes(paths: list[str]) -> list[Path]:
    from hdrzoo.io import detect_layout, find_scenes

    scenes: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            scenes.append(path)  # reported as a per-scene error later
            continue
        try:
            detect_layout(path)
            scenes.append(path)
        except HDRZooError:
            found = find_scenes(path)
            scenes.extend(found if found else [path])
    return scenes


def _cmd_merge(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    from hdrzoo import metrics
    from hdrzoo.hub import load
    from hdrzoo.io import read_bracket, write_hdr, write_preview

    if args.divisor is not None and args.divisor < 1:
        raise HDRZooError(
            f"--divisor must be a number >= 1 (e.g. 65535 or 65536), got {args.divisor}"
        )
    console = Console(stderr=True)
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HDRZooError(
            f"cannot create output folder {out_dir}: {err.strerror}; choose another --out"
        ) from err
    model = load(args.model, weights=args.weights, pretrained=args.pretrained, device=args.device)
    if args.weights is None and not args.pretrained and any(True for _ in model.parameters()):
        raise HDRZooError(
            f"{args.model} has learned parameters but no weights were given, so it would merge with "
            "random weights; pass --weights (a file, hf-hub:org/repo, local-dir:PATH or a .ckpt) or "
            "--pretrained (see `hdrzoo models` for what is published)"
        )
    divisor = args.divisor if args.divisor is not None else model.conventions.get("divisor", 65535)
    scenes = _expand_scenes(args.scenes)
    names = _scene_names(scenes)

    table = Table(title=f"hdrzoo merge ({args.model})")
    for column in ("scene", "status", "PSNR-mu", "PSNR-L", "output"):
        table.add_column(column)
    failures = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("merging", total=len(scenes))
        for scene, name in zip(scenes, names):
            target = out_dir / f"{name}.{args.format}"
            progress.update(task, description=f"merging {name}")
            if target.exists() and not args.overwrite:
                table.add_row(escape(name), "skipped (exists)", "", "", escape(str(target)))
                progress.advance(task)
                continue
            _remove_stale_temporaries(out_dir, name)
            try:
                bracket = read_bracket(scene, divisor=divisor)
                hdr = model.merge(
                    bracket,
                    tile=args.tile,
                    overlap=args.overlap,
                    device=args.device,
                    precision=args.precision,
                    compile=args.compile,
                )
                # The HDR is written last: its presence marks the scene as done for a rerun.
                if args.preview:
                    write_preview(out_dir / f"{name}.png", hdr)
                write_hdr(target, hdr)
                scores = ("", "")
                if bracket.gt is not None:
                    scores = (
                        f"{float(metrics.psnr_mu(hdr, bracket.gt)):.2f}",
                        f"{float(metrics.psnr_l(hdr, bracket.gt)):.2f}",
                    )
                table.add_row(escape(name), "ok", *scores, escape(str(target)))
            except HDRZooError as err:
                failures += 1
                table.add_row(escape(name), "[red]failed[/red]", "", "", escape(str(err)))
                print(f"{name}: {err}", file=sys.stderr)
            progress.advance(task)
    Console().print(table)
    if failures:
        print(
            f"{failures} of {len(scenes)} scene(s) failed; the others were written.",
            file=sys.stderr,
        )
    return 1 if failures else 0


def _scene_names(scenes: list[Path]) -> list[str]:
    """Unique output names: a scene's folder name, with as many parent folders prefixed as
    needed where scenes share one (Kalantari's test sets reuse 001, 002, ... under EXTRA/
    and Training/), and a counter as the last resort."""
    parts = [scene.resolve().parts for scene in scenes]
    depth = [1] * len(scenes)
    while True:
        names = ["_".join(p[-d:]).lstrip("/_") or "scene" for p, d in zip(parts, depth)]
        clashes = {n for n in names if names.count(n) > 1}
        grow = [i for i, n in enumerate(names) if n in clashes and depth[i] < len(parts[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def _remove_stale_temporaries(out_dir: Path, name: str) -> None:
    """Drop hidden temporaries a killed earlier run left for this scene (atomic writes)."""
    for stale in out_dir.glob(f".{name}.*.tmp.*"):
        stale.unlink(missing_ok=True)


# ------------------------------------------------------------------ models -------
def _cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from hdrzoo.hub import list_models
    from hdrzoo.models.registry import get_entry

    table = Table(title="hdrzoo models")
    for column in ("name", "params", "paper", "frames", "weights", "licence"):
        table.add_column(column, overflow="fold")
    for name in list_models(args.pattern):
        entry = get_entry(name)
        module = entry.build()
        params = sum(p.numel() for p in module.net.parameters())
        frames = module.frames if module.frames is not None else "any"
        tags = ", ".join(
            f"{name}.{t.tag}" + ("" if t.hub_id else " (bring your own file)")
            for t in entry.weights.values()
        )
        licences = "; ".join(sorted({t.licence for t in entry.weights.values() if t.licence}))
        weights = tags or ("none needed" if params == 0 else "none published")
        table.add_row(name, f"{params:,}", entry.paper, str(frames), weights, licences or "-")
    Console(width=160).print(table)
    return 0


# ------------------------------------------------------------------ export -------
def _cmd_export(args: argparse.Namespace) -> int:
    from hdrzoo.hub import export

    out = export(args.checkpoint, args.out, tag=args.tag)
    print(f"wrote {out}/config.json, model.safetensors, README.md")
    return 0


# -------------------------------------------------------------------- demo -------
def _cmd_demo(args: argparse.Namespace) -> int:
    from hdrzoo.demo import run_demo

    run_demo(
        out_dir=args.out,
        model=args.model,
        minutes=args.minutes,
        max_steps=args.steps,
        seed=args.seed,
    )
    return 0


# --------------------------------------------------------------- Lightning -------
def run_lightning_cli(argv: list[str], run: bool = True) -> Any:
    """``hdrzoo fit|validate|test|predict``: LightningCLI in subclass mode over every model and DataModule."""
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    import hdrzoo.data.modules  # noqa: F401  (makes the DataModules resolvable by short name)
    from hdrzoo.hub import _import_models
    from hdrzoo.models.base import HDRModule

    _import_models()

    class HDRZooCLI(LightningCLI):
        def before_instantiate_classes(self) -> None:
            # One fixed checkpoint folder per run root (not per logger version), so that
            # `--ckpt_path last` finds the last.ckpt of an interrupted run.
            config = self.config[self.subcommand] if self.subcommand else self.config
            if config.get("checkpoint") is not None and config.checkpoint.dirpath is None:
                root = config.trainer.default_root_dir or "runs"
                config.checkpoint.dirpath = str(Path(root) / "checkpoints")
            if config.trainer.enable_progress_bar is False and config.trainer.callbacks:
                # The rich bar is only a default; turning bars off must not be an error.
                config.trainer.callbacks = [
                    c
                    for c in config.trainer.callbacks
                    if not str(c.class_path).endswith("ProgressBar")
                ]

        def add_arguments_to_parser(self, parser) -> None:
            # `--checkpoint.*` configures the one ModelCheckpoint; `last.ckpt` makes
            # `--ckpt_path last` resume an interrupted run.
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults(
                {
                    "checkpoint.save_last": True,
                    "trainer.default_root_dir": "runs",
                    "trainer.logger": [
                        {
                            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                            "init_args": {"save_dir": "runs", "name": "tensorboard"},
                        },
                        {
                            "class_path": "lightning.pytorch.loggers.CSVLogger",
                            "init_args": {"save_dir": "runs", "name": "csv"},
                        },
                    ],
                    "trainer.callbacks": [
                        {"class_path": "lightning.pytorch.callbacks.RichProgressBar"},
                        {"class_path": "lightning.pytorch.callbacks.LearningRateMonitor"},
                    ],
                }
            )

    # Hand the arguments over through sys.argv alone: LightningCLI warns when it gets both,
    # and Lightning's DDP launcher re-executes sys.argv in the worker processes.
    saved_argv = sys.argv
    sys.argv = [saved_argv[0], *argv]
    try:
        return HDRZooCLI(
            HDRModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            run=run,
        )
    finally:
        sys.argv = saved_argv


if __name__ == "__main__":
    sys.exit(main())
