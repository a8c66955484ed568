"""`hdrzoo demo`: the main job on the embedded default data.

1. Synthesise a held-out bracketed scene with camera and object motion from real radiance.
2. Train the smallest learned model of the zoo briefly on CPU on synthetic brackets, through
   the same Lightning code path as ``hdrzoo fit``.
3. Merge the scene with that model and with ``classic``; write the HDRs, previews and a
   side-by-side PNG (frames, classic, model, ground truth, error maps); print metrics.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from hdrzoo.errors import HDRZooError

__all__ = ["run_demo", "DEMO_SETTINGS"]

DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    # Small crops and no perceptual term: ImageNet VGG weights may be unreachable, and the
    # demo must finish in minutes on two CPU cores.
    "safnet_s": {
        "model": {"perceptual_weight": 0.0, "window_size": 64},
        "data": {"crop_size": 128, "batch_size": 4},
        "lr": 1e-3,
    },
}
SCENE_SEED_OFFSET = 10_000_000  # demo scenes use seeds disjoint from training and validation
SCENE_SIZE = (256, 384)


def _smallest_learned_model() -> str | None:
    from hdrzoo.hub import create_model, list_models

    sizes = {}
    for name in list_models():
        params = sum(p.numel() for p in create_model(name).net.parameters())
        if params > 0:
            sizes[name] = params
    return min(sizes, key=sizes.get) if sizes else None


def _train(
    name: str, out_dir: Path, minutes: float, max_steps: int | None, seed: int, console
) -> Any:
    import lightning as L
    from lightning.pytorch.callbacks import RichProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from hdrzoo.data.modules import SyntheticDataModule
    from hdrzoo.hub import create_model

    # The demo's console is for the user: keep Lightning's tips and its own internal
    # deprecation notices out of it (warnings and errors still show).
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings(
        "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning
    )

    settings = DEMO_SETTINGS.get(name, {})
    lr = settings.get("lr", 1e-3)
    L.seed_everything(seed, verbose=False)
    module = create_model(
        name,
        optimizer=lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=1e-4),
        **settings.get("model", {}),
    )
    data = SyntheticDataModule(seed=seed, **settings.get("data", {}))
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_time={"minutes": minutes},
        max_steps=max_steps if max_steps is not None else -1,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=CSVLogger(out_dir, name="logs"),
        default_root_dir=out_dir,
        enable_checkpointing=True,
        callbacks=[RichProgressBar()],
        enable_model_summary=False,
    )
    console.print(
        f"training [bold]{name}[/bold] on synthetic brackets for up to {minutes:g} min on CPU ..."
    )
    trainer.fit(module, datamodule=data)
    return module.eval()


def run_demo(
    out_dir: str | Path = "demo_out",
    model: str | None = None,
    minutes: float = 3.0,
    max_steps: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Run the demo; returns ``{method: {metric: value}}`` for the demo scene."""
    from rich.console import Console
    from rich.table import Table

    from hdrzoo import metrics, viz
    from hdrzoo.data.synthetic import synthesize
    from hdrzoo.hub import load
    from hdrzoo.io import write_hdr, write_image, write_preview
    from hdrzoo.ops.tonemap import linearize

    console = Console()
    started = time.monotonic()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HDRZooError(f"cannot create demo folder {out}: {err.strerror}") from err

    scene = synthesize(SCENE_SEED_OFFSET + seed, size=SCENE_SIZE)
    console.print(
        f"scene: {scene.num_frames} frames {scene.size[0]}x{scene.size[1]}, exposures "
        f"{[round(t, 2) for t in scene.exposures.tolist()]}, reference {scene.ref}"
    )

    results: dict[str, torch.Tensor] = {}
    reference_alone = linearize(scene.ldr[scene.ref], scene.exposures[scene.ref : scene.ref + 1])[0]
    results["reference frame"] = reference_alone
    results["classic"] = load("classic").merge(scene)

    name = model or _smallest_learned_model()
    if name is None:
        console.print(
            "[yellow]no learned model is available yet: showing the classic merge only[/yellow]"
        )
    else:
        learned = _train(name, out, minutes, max_steps, seed, console)
        results[name] = learned.merge(scene)

    table = Table(title=f"demo scene (seed {SCENE_SEED_OFFSET + seed})")
    for column in ("method", "PSNR-mu", "PSNR-L", "SSIM-mu"):
        table.add_column(column)
    scores: dict[str, dict[str, float]] = {}
    for method, hdr in results.items():
        scores[method] = metrics.evaluate(hdr, scene.gt, metrics=("psnr_mu", "psnr_l", "ssim_mu"))
        table.add_row(
            method,
            *(
                f"{scores[method][k]:.2f}" if k != "ssim_mu" else f"{scores[method][k]:.4f}"
                for k in ("psnr_mu", "psnr_l", "ssim_mu")
            ),
        )

    write_hdr(out / "ground_truth.exr", scene.gt)
    panels = [
        (f"frame {i} (t={t:g})", scene.ldr[i]) for i, t in enumerate(scene.exposures.tolist())
    ]
    for method, hdr in results.items():
        if method == "reference frame":
            continue
        slug = method.replace(" ", "_")
        write_hdr(out / f"{slug}.exr", hdr)
        write_preview(out / f"{slug}.png", hdr)
        panels.append((f"{method} {scores[method]['psnr_mu']:.2f} dB", viz.display(hdr)))
    panels.append(("ground truth", viz.display(scene.gt)))
    # One colour scale for every error map (the classic merge's), so they compare at a glance.
    vmax = viz.error_map(results["classic"], scene.gt).vmax
    for method, hdr in results.items():
        if method != "reference frame":
            panels.append(
                (
                    f"|error| {method} (mu-law, max {vmax:.2f})",
                    viz.error_map(hdr, scene.gt, vmax=vmax).image,
                )
            )
    write_image(out / "comparison.png", viz.side_by_side(panels, columns=4))

    console.print(table)
    console.print(
        f"wrote {out}/comparison.png and the HDR images in {time.monotonic() - started:.0f} s"
    )
    return scores
