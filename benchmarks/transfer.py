"""Does synthetic training transfer? Leave-one-radiance-out evaluation (issue 22).

A model is scored on bracketed scenes made from radiance maps it never trained on, captured
with a recipe the simulator's default never uses, against the two baselines every learned
merge must beat: the reference frame alone (linearised with gamma 2.2) and ``classic``.

Protocol (docs/transfer.md):

- **Radiance**: the maps of ``--maps`` folders (default: the packaged assets and
  ``../shared/data/hdri`` when present) are identified by content (SHA-256), so a copy of a
  held-in map under another name or folder is still held in. Held-in maps are the ones a
  model trained on (``--held-in``; default: the packaged assets, what ``radiance: assets``
  trains on); scenes are made only from the others. ``--leave-one-out`` makes one fold per
  map (train on all the others, evaluate on it); it needs ``--train-steps`` or
  ``--train-minutes``.
- **Motion**: the simulator's geometry, set harder than its defaults: a camera shift of
  4-12 px and up to 2 degrees per frame, 1-3 objects moving 20-60 px per frame step, EV
  spacing 2, 2.5 or 3 stops.
- **Capture** (:class:`CaptureRecipe`, not the simulator's code): true Poisson shot noise
  for a sensor with a stated full well plus Gaussian read noise, a camera response that
  is not a pure gamma (the sRGB curve followed by a highlight shoulder), 16-bit output.
- **Scores** per scene and averaged over scenes: PSNR-mu and PSNR-L on the whole image,
  and PSNR-mu restricted to the reference frame's well-exposed pixels (every channel in
  ``[0.1, 0.9]``) and to its saturated pixels (any channel >= 0.99). A merge must win on
  saturated pixels without losing on well-exposed ones.

Usage::

    python benchmarks/transfer.py                          # classic + reference, 3 scenes/map
    python benchmarks/transfer.py --model safnet_s         # + an untrained SAFNet-S
    python benchmarks/transfer.py --model path/to/last.ckpt --held-in city sunset
    python benchmarks/transfer.py --model safnet_s --train-minutes 8 --held-in city courtyard
    python benchmarks/transfer.py --model safnet_s --train-steps 300 --leave-one-out --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdrzoo.bracket import Bracket
from hdrzoo.data.synthetic import (
    ASSETS_DIR,
    RADIANCE_SUFFIXES,
    SyntheticConfig,
    synthesize,
)
from hdrzoo.errors import HDRZooError
from hdrzoo.ops.tonemap import GAMMA, linearize, mu_law

REPO = Path(__file__).resolve().parents[1]


def shared_hdri() -> Path | None:
    """``data/hdri`` of ``$HDRZOO_SHARED`` or of ``shared/`` beside the repository, if present."""
    env = os.environ.get("HDRZOO_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared", REPO / "shared"]
    for candidate in candidates:
        if (candidate / "data" / "hdri").is_dir():
            return candidate / "data" / "hdri"
    return None


SCENE_SEED_OFFSET = 20_000_000
"""Seeds of the held-out scenes: disjoint from training (0...), validation (1e6), test (2e6)
and demo (1e7) seeds; the map's content decides the rest."""

WELL_EXPOSED = (0.1, 0.9)
"""A reference pixel is well exposed when every channel of its LDR value lies in this range."""

SATURATED = 0.99
"""A reference pixel is saturated when any channel of its LDR value is at least this."""

HELD_OUT_MOTION: dict[str, Any] = {
    "camera_translation": (4.0, 12.0),
    "camera_rotation": 2.0,
    "object_speed": (20.0, 60.0),
    "ev_steps": (2.0, 2.5, 3.0),
}
"""Simulator geometry of the held-out scenes (the simulator defaults: 1-6 px, 1 degree,
10-60 px, EV steps 2 or 3)."""

BASELINES = ("reference", "classic")


# ----------------------------------------------------------------------------- capture


@dataclass(frozen=True)
class CaptureRecipe:
    """The held-out capture: a camera unlike the simulator's.

    Attributes:
        full_well: electrons at signal 1 (clipping); shot noise is Poisson in electrons.
        read_noise: Gaussian read noise, electrons (standard deviation).
        curve: ``"srgb"`` (the sRGB transfer curve, linear toe) or ``"gamma"`` (``x ** (1 /
            2.2)``, what the models assume: for ablations).
        shoulder: ``a`` of the highlight shoulder ``(1 + a) y / (y + a)`` applied after the
            sRGB curve (slope ``(1 + a) / a`` at black, ``a / (1 + a)`` at white); ``None``
            for the plain sRGB curve.
        bit_depth: bits per channel of the output codes.
    """

    full_well: float = 4000.0
    read_noise: float = 3.0
    curve: str = "srgb"
    shoulder: float | None = 6.0
    bit_depth: int = 16


def srgb_encode(linear: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve (IEC 61966-2-1): linear toe below 0.0031308, then a 1/2.4 power."""
    linear = linear.clamp(0.0, 1.0)
    return torch.where(
        linear <= 0.0031308,
        12.92 * linear,
        1.055 * linear.clamp(min=0.0031308).pow(1.0 / 2.4) - 0.055,
    )


def camera_response(
    linear: torch.Tensor, shoulder: float | None, curve: str = "srgb"
) -> torch.Tensor:
    """The held-out camera response: sRGB, then a highlight shoulder; fixes 0 and 1, monotone.

    Examples:
        >>> camera_response(torch.tensor([0.0, 1.0]), shoulder=6.0).tolist()
        [0.0, 1.0]
    """
    if curve not in ("srgb", "gamma"):
        raise HDRZooError(f"CaptureRecipe.curve must be 'srgb' or 'gamma', got {curve!r}")
    if curve == "srgb":
        encoded = srgb_encode(linear)
    else:
        encoded = linear.clamp(0.0, 1.0).pow(1.0 / GAMMA)
    if shoulder is None:
        return encoded
    return (1.0 + shoulder) * encoded / (encoded + shoulder)


def capture(
    signal: torch.Tensor, recipe: CaptureRecipe, generator: torch.Generator
) -> torch.Tensor:
    """LDR codes ``(N, 3, H, W)`` in [0, 1] from the linear signal ``k R_i t_i`` (full well = 1).

    Poisson shot noise in electrons (sampled exactly, unlike the simulator's Gaussian
    approximation), Gaussian read noise, clipping, the camera response, quantisation.
    """
    electrons = torch.poisson(signal.clamp(0.0, 2.0) * recipe.full_well, generator=generator)
    electrons += recipe.read_noise * torch.randn(signal.shape, generator=generator)
    exposed = (electrons / recipe.full_well).clamp_(0.0, 1.0)
    levels = float(2**recipe.bit_depth - 1)
    return torch.round(camera_response(exposed, recipe.shoulder, recipe.curve) * levels) / levels


# ----------------------------------------------------------------------------- radiance maps


def map_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a map's bytes: the map's identity, whatever its name or folder."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def discover_maps(folders: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """``{name: path}`` of the radiance maps in ``folders``, one entry per distinct content.

    The name is the file stem; a map whose bytes equal an earlier one is dropped (the
    packaged assets are copies of two shared maps). Two different maps with the same stem
    are an error.
    """
    maps: dict[str, Path] = {}
    digests: dict[str, str] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise HDRZooError(f"--maps: {folder} is not a folder of .hdr / .exr radiance maps")
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in RADIANCE_SUFFIXES or not path.is_file():
                continue
            digest = map_digest(path)
            if digest in digests:
                continue
            if path.stem in maps:
                raise HDRZooError(
                    f"two different radiance maps are named {path.stem!r}: {maps[path.stem]} "
                    f"and {path}; rename one"
                )
            maps[path.stem] = path
            digests[digest] = path.stem
    if not maps:
        raise HDRZooError(f"no .hdr / .exr radiance maps in {[str(f) for f in folders]}")
    return maps


def default_map_folders() -> list[Path]:
    """The packaged assets, plus the shared CC0 maps when present (:func:`shared_hdri`)."""
    shared = shared_hdri()
    return [ASSETS_DIR] + ([shared] if shared is not None else [])


def packaged_map_names(maps: dict[str, Path]) -> list[str]:
    """Names in ``maps`` whose content is a packaged asset (what ``radiance: assets`` uses)."""
    packaged = {
        map_digest(p) for p in ASSETS_DIR.glob("*") if p.suffix.lower() in RADIANCE_SUFFIXES
    }
    return [name for name, path in maps.items() if map_digest(path) in packaged]


@dataclass
class Fold:
    """One split of the radiance maps: a model trains on ``held_in`` and is scored on ``held_out``."""

    held_in: list[str]
    held_out: list[str]


def make_folds(
    maps: dict[str, Path],
    held_in: Sequence[str] | None = None,
    held_out: Sequence[str] | None = None,
    leave_one_out: bool = False,
) -> list[Fold]:
    """The folds to evaluate; held-in and held-out maps never share content.

    Args:
        maps: from :func:`discover_maps`.
        held_in: maps a model trained on (default: the packaged assets).
        held_out: maps to make scenes from (default: every map not held in).
        leave_one_out: one fold per map of ``held_out`` (default: every map), training on
            all the other maps.
    """
    for names, what in ((held_in, "--held-in"), (held_out, "--held-out")):
        unknown = sorted(set(names or ()) - set(maps))
        if unknown:
            raise HDRZooError(f"{what}: unknown map(s) {unknown}; known maps: {sorted(maps)}")
    if leave_one_out:
        if held_in:
            raise HDRZooError("--leave-one-out chooses the held-in maps itself; drop --held-in")
        return [
            Fold(held_in=[m for m in maps if m != out], held_out=[out])
            for out in (held_out or list(maps))
        ]
    held_in = list(held_in) if held_in is not None else packaged_map_names(maps)
    held_out = list(held_out) if held_out is not None else [m for m in maps if m not in held_in]
    shared = {map_digest(maps[m]) for m in held_in} & {map_digest(maps[m]) for m in held_out}
    if shared:
        raise HDRZooError("held-out maps must not include a held-in map (same content found)")
    if not held_out:
        raise HDRZooError(
            f"no held-out map: all of {sorted(maps)} are held in; add a folder with --maps"
        )
    return [Fold(held_in=held_in, held_out=held_out)]


# ----------------------------------------------------------------------------- scenes


def held_out_scene(
    path: str | os.PathLike,
    seed: int,
    size: tuple[int, int] = (256, 384),
    recipe: CaptureRecipe = CaptureRecipe(),
    motion: dict[str, Any] | None = None,
) -> Bracket:
    """One held-out scene: the simulator's geometry on map ``path``, captured by ``recipe``.

    The ground truth is the simulator's (``min(k R_ref, 1)``, noise-free); only the capture
    of the frames is replaced. ``motion`` replaces :data:`HELD_OUT_MOTION` (ablations).
    """
    motion = HELD_OUT_MOTION if motion is None else motion
    config = SyntheticConfig(size=size, radiance=str(path), keep_radiance=True, **motion)
    simulated = synthesize(seed, config)
    signal = simulated.meta["radiance"] * simulated.exposures[:, None, None, None]
    generator = torch.Generator().manual_seed(seed)
    ldr = capture(signal, recipe, generator)
    meta = {
        key: simulated.meta[key]
        for key in ("source", "seed", "k", "evs", "flow", "object_masks", "objects")
    }
    meta["capture"] = asdict(recipe)
    return Bracket(
        ldr=ldr,
        exposures=simulated.exposures,
        ref=simulated.ref,
        gt=simulated.gt,
        name=f"{Path(path).stem}-{seed}",
        meta=meta,
    )


def held_out_scenes(
    maps: dict[str, Path],
    names: Sequence[str],
    per_map: int,
    size: tuple[int, int],
    recipe: CaptureRecipe = CaptureRecipe(),
    motion: dict[str, Any] | None = None,
) -> list[Bracket]:
    """``per_map`` scenes from each map of ``names``; seeds depend on the map's content only."""
    scenes = []
    for name in names:
        base = SCENE_SEED_OFFSET + 1000 * (int(map_digest(maps[name])[:6], 16) % 10_000)
        scenes += [
            held_out_scene(maps[name], base + j, size, recipe, motion) for j in range(per_map)
        ]
    return scenes


# ----------------------------------------------------------------------------- scores


def region_masks(reference_ldr: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pixel masks ``(H, W)`` of the reference frame ``(3, H, W)``: well exposed and saturated."""
    low, high = WELL_EXPOSED
    return {
        "well_exposed": ((reference_ldr >= low) & (reference_ldr <= high)).all(dim=0),
        "saturated": (reference_ldr >= SATURATED).any(dim=0),
    }


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (peak 1) of ``(3, H, W)`` images over the pixels of ``mask`` ``(H, W)``; NaN if empty."""
    if not bool(mask.any()):
        return math.nan
    error = (pred.double() - target.double())[:, mask]
    mse = float(error.square().mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def scene_scores(hdr: torch.Tensor, scene: Bracket) -> dict[str, float]:
    """PSNR-mu and PSNR-L of a merge, whole image and per region (predictions clipped to [0, 1])."""
    pred = mu_law(hdr.detach().double().clamp(0.0, 1.0))
    target = mu_law(scene.gt.double())
    every = torch.ones(scene.gt.shape[-2:], dtype=torch.bool)
    scores = {
        "psnr_mu": masked_psnr(pred, target, every),
        "psnr_l": masked_psnr(hdr.detach().double().clamp(0.0, 1.0), scene.gt, every),
    }
    for region, mask in region_masks(scene.ldr[scene.ref]).items():
        scores[f"psnr_mu_{region}"] = masked_psnr(pred, target, mask)
    return scores


def reference_alone(scene: Bracket) -> torch.Tensor:
    """The do-nothing merge: the reference frame linearised with gamma 2.2."""
    return linearize(scene.ldr[scene.ref], scene.exposures[scene.ref : scene.ref + 1])[0]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate(methods: dict[str, Callable[[Bracket], torch.Tensor]], scenes: list[Bracket]) -> dict:
    """Scores of every method on every scene, and their means over scenes (NaN-free regions only)."""
    rows = []
    for scene in scenes:
        masks = region_masks(scene.ldr[scene.ref])
        with torch.no_grad():
            results = {name: scene_scores(merge(scene), scene) for name, merge in methods.items()}
        rows.append(
            {
                "scene": scene.name,
                "source": scene.meta.get("source"),
                "well_exposed_fraction": float(masks["well_exposed"].float().mean()),
                "saturated_fraction": float(masks["saturated"].float().mean()),
                "methods": results,
            }
        )
    return {"scenes": rows, "mean": mean_scores(rows)}


def mean_scores(rows: list[dict]) -> dict[str, dict[str, float]]:
    """``{method: {score: mean over scenes}}``; a region absent from a scene (NaN) is skipped."""
    if not rows:
        return {}
    return {
        name: {key: _mean([r["methods"][name][key] for r in rows]) for key in scores}
        for name, scores in rows[0]["methods"].items()
    }


def margins(means: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean PSNR-mu margin (dB) of each learned method over each baseline, per region."""
    out = {}
    for name, scores in means.items():
        if name in BASELINES:
            continue
        out[name] = {
            f"{key}_vs_{base}": scores[key] - means[base][key]
            for base in BASELINES
            if base in means
            for key in ("psnr_mu", "psnr_mu_well_exposed", "psnr_mu_saturated")
        }
    return out


# ----------------------------------------------------------------------------- training


def training_radiance(recipe: str | list[str] | None, map_paths: Sequence[Path]) -> list[str]:
    """The recipe's radiance sources with the packaged maps replaced by the held-in maps.

    Procedural scenes stay (they are no radiance map, so hold nothing out), repeated so
    that they keep their share: one source of a list is drawn per bracket, and the recipe's
    ``"assets"`` was one source, where the held-in maps are several.

    Examples:
        >>> training_radiance(["assets", "procedural"], [Path("a.exr"), Path("b.exr")])
        ['a.exr', 'b.exr', 'procedural', 'procedural']
        >>> training_radiance(None, [Path("a.exr"), Path("b.exr")])
        ['a.exr', 'b.exr']
    """
    sources = [recipe] if isinstance(recipe, str) else list(recipe or ["assets"])
    maps = [str(p) for p in map_paths]
    procedural = sources.count("procedural") * len(maps)
    return maps + ["procedural"] * procedural


def train_on_maps(
    model: str,
    map_paths: Sequence[Path],
    max_steps: int | None,
    max_seconds: float | None,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Train registry model ``model`` with the demo recipe on synthetic brackets of ``map_paths`` only.

    The recipe (optimiser, learning rate, clipping, cosine decay, crops) is
    :func:`hdrzoo.demo.demo_recipe`'s; only the radiance is restricted. Nothing is saved.
    Returns the trained module (eval mode) and a record of the run.
    """
    import lightning as L

    from hdrzoo.data.modules import SyntheticDataModule
    from hdrzoo.demo import DEMO_SETTINGS, demo_recipe

    module, _, recipe = demo_recipe(model, seed, max_steps, max_seconds)
    data_settings = dict(DEMO_SETTINGS.get(model, {}).get("data", {}))
    radiance = training_radiance(data_settings.get("synthetic", {}).get("radiance"), map_paths)
    data = SyntheticDataModule(seed=seed, radiance=radiance, **data_settings)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        trainer = L.Trainer(
            accelerator="auto",
            devices=1,
            max_steps=max_steps if max_steps is not None else -1,
            max_time=None if max_seconds is None else {"seconds": max_seconds},
            max_epochs=-1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=scratch,
            **recipe,
        )
        trainer.fit(module, datamodule=data)
    record = {
        "model": model,
        "recipe": "hdrzoo.demo.demo_recipe",
        "seed": seed,
        "steps": int(trainer.global_step),
        "seconds": round(time.monotonic() - started, 1),
        "max_steps": max_steps,
        "max_seconds": max_seconds,
        "radiance": [Path(p).name for p in map_paths],
        "procedural_share": radiance.count("procedural") / len(radiance),
        "crop_size": data.crop_size,
        "batch_size": data.batch_size,
        "device": str(module.device),
    }
    return module.eval().cpu(), record


# ----------------------------------------------------------------------------- the run


def run(
    model: str | None = None,
    map_folders: Sequence[str | os.PathLike] | None = None,
    held_in: Sequence[str] | None = None,
    held_out: Sequence[str] | None = None,
    leave_one_out: bool = False,
    per_map: int = 3,
    size: tuple[int, int] = (256, 384),
    train_steps: int | None = None,
    train_minutes: float | None = None,
    seed: int = 0,
    recipe: CaptureRecipe = CaptureRecipe(),
) -> dict[str, Any]:
    """Run the protocol; returns the JSON-able record (see the module docstring)."""
    from hdrzoo.hub import load

    training = train_steps is not None or train_minutes is not None
    if leave_one_out and not training:
        raise HDRZooError(
            "--leave-one-out trains one model per fold: give --train-steps or --train-minutes"
        )
    weights_suffixes = (".ckpt", ".pt", ".pth", ".safetensors")
    if training and (model is None or Path(model).suffix in weights_suffixes or os.sep in model):
        raise HDRZooError(
            "--train-steps / --train-minutes train a registry model: give --model NAME "
            f"(e.g. safnet_s), not {model!r}"
        )
    maps = discover_maps(map_folders or default_map_folders())
    folds = make_folds(maps, held_in, held_out, leave_one_out)
    classic = load("classic")
    record: dict[str, Any] = {
        "protocol": {
            "maps": {name: str(path) for name, path in maps.items()},
            "per_map": per_map,
            "size": list(size),
            "capture": asdict(recipe),
            "motion": {
                k: list(v) if isinstance(v, tuple) else v for k, v in HELD_OUT_MOTION.items()
            },
            "well_exposed": list(WELL_EXPOSED),
            "saturated": SATURATED,
        },
        "model": model,
        "folds": [],
        "host": {"python": platform.python_version(), "torch": torch.__version__},
    }
    every_scene: list[dict] = []
    for fold in folds:
        methods: dict[str, Callable[[Bracket], torch.Tensor]] = {
            "reference": reference_alone,
            "classic": classic.merge,
        }
        training_record = None
        if model is not None:
            if training:
                learned, training_record = train_on_maps(
                    model,
                    [maps[m] for m in fold.held_in],
                    train_steps,
                    None if train_minutes is None else 60.0 * train_minutes,
                    seed,
                )
            else:
                learned = load(model)
            methods[model] = learned.merge
        scenes = held_out_scenes(maps, fold.held_out, per_map, size, recipe)
        result = evaluate(methods, scenes)
        record["folds"].append({**asdict(fold), "training": training_record, **result})
        every_scene += result["scenes"]
    record["scenes"] = every_scene
    record["mean"] = mean_scores(every_scene)
    record["margins"] = margins(record["mean"])
    return record


COLUMNS = {
    "psnr_mu": "PSNR-mu",
    "psnr_l": "PSNR-L",
    "psnr_mu_well_exposed": "mu well-exp.",
    "psnr_mu_saturated": "mu saturated",
}


def format_table(record: dict[str, Any]) -> str:
    """A Markdown table: one row per scene and method, then the means and the margins."""
    lines = [
        "| scene | method | " + " | ".join(COLUMNS.values()) + " |",
        "| --- | --- |" + " ---: |" * len(COLUMNS),
    ]

    def cells(scores: dict[str, float]) -> str:
        return " | ".join(f"{scores[k]:.2f}" for k in COLUMNS)

    for row in record["scenes"]:
        label = f"{row['scene']} (sat. {100 * row['saturated_fraction']:.0f} %)"
        for name, scores in row["methods"].items():
            lines.append(f"| {label} | {name} | {cells(scores)} |")
            label = ""
    for name, scores in record["mean"].items():
        lines.append(f"| **mean** | {name} | {cells(scores)} |")
    for name, values in record["margins"].items():
        for base in BASELINES:
            parts = ", ".join(
                f"{COLUMNS[key]} {values[f'{key}_vs_{base}']:+.2f} dB"
                for key in ("psnr_mu", "psnr_mu_well_exposed", "psnr_mu_saturated")
                if f"{key}_vs_{base}" in values
            )
            lines.append(f"\n{name} vs {base}: {parts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="registry name or weights / checkpoint path (hdrzoo.load)")
    parser.add_argument("--maps", nargs="+", help="folders of .hdr / .exr radiance maps")
    parser.add_argument("--held-in", nargs="+", help="maps the model trained on (default: assets)")
    parser.add_argument(
        "--held-out", nargs="+", help="maps to make scenes from (default: the rest)"
    )
    parser.add_argument("--leave-one-out", action="store_true", help="one fold per map")
    parser.add_argument("--per-map", type=int, default=3, help="scenes per held-out map")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 384), metavar=("H", "W"))
    parser.add_argument("--train-steps", type=int, help="train --model for this many steps first")
    parser.add_argument("--train-minutes", type=float, help="train --model for this long first")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared machines: 1)")
    parser.add_argument("--json", metavar="PATH", help="also write the record as JSON")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    record = run(
        model=args.model,
        map_folders=args.maps,
        held_in=args.held_in,
        held_out=args.held_out,
        leave_one_out=args.leave_one_out,
        per_map=args.per_map,
        size=tuple(args.size),
        train_steps=args.train_steps,
        train_minutes=args.train_minutes,
        seed=args.seed,
    )
    record["seconds"] = round(time.monotonic() - started, 1)
    for fold in record["folds"]:
        print(f"fold: held in {fold['held_in']}, held out {fold['held_out']}")
        if fold["training"]:
            print(f"  trained {fold['training']['steps']} steps in {fold['training']['seconds']} s")
    print(format_table(record))
    print(f"\n{len(record['scenes'])} scenes in {record['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2, allow_nan=True) + "\n")
    return record


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
