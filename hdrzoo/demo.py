"""`hdrzoo demo`: the main job on the embedded default data.

1. Synthesise a held-out bracketed scene with camera and object motion from real radiance.
2. Train the smallest learned model of the zoo briefly on CPU on synthetic brackets, through
   the same Lightning code path as ``hdrzoo fit``.
3. Merge the scene with that model and with ``classic``; write the HDRs, previews and a
   side-by-side PNG (frames, classic, model, ground truth, error maps); print the metrics
   and write them to ``metrics.md`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from hdrzoo.data.synthetic import VARIETY
from hdrzoo.errors import HDRZooError

__all__ = [
    "run_demo",
    "demo_recipe",
    "CosineOverBudget",
    "DEMO_SETTINGS",
    "StepsAndTimeLeft",
    "time_left_s",
]

DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    # Small crops and no perceptual term: ImageNet VGG weights may be unreachable, and the
    # demo must finish in minutes on two CPU cores.
    "safnet_s": {
        "model": {"perceptual_weight": 0.0, "window_size": 64},
        "data": {"crop_size": 128, "batch_size": 4, "synthetic": VARIETY},
        "lr": 1e-3,
        # lr 1e-3 (5x the paper's) learns in minutes but jolts the flows by tens of pixels
        # on some batches: clip the gradient norm, and decay the rate to zero over the run
        # so that training ends settled rather than on a random jolt (docs/models/safnet.md,
        # "Training from scratch").
        "trainer": {"gradient_clip_val": 1.0},
        "cosine_decay": True,
    },
    "sthdr": {
        # 64 crops (the smallest its U-Nets take; the configs train on 256): a CPU step
        # costs about a second. The zero output conv starts it at the reference frame.
        # The simulator's defaults, not VARIETY: within the tests' 60 steps the harder data
        # leaves it below the reference frame (26.09 vs 26.94 dB; 28.46 on the defaults).
        "data": {"crop_size": 64, "batch_size": 4},
        "lr": 1e-3,
        "trainer": {"gradient_clip_val": 1.0},
        "cosine_decay": True,
    },
}
SCENE_SEED_OFFSET = 10_000_000  # demo scenes use seeds disjoint from training and validation
SCENE_SIZE = (256, 384)
METRIC_COLUMNS = {"psnr_mu": "PSNR-mu", "psnr_l": "PSNR-L", "ssim_mu": "SSIM-mu"}


def time_left_s(
    step: int, elapsed_s: float, max_steps: int | None, max_seconds: float | None
) -> float | None:
    """Seconds until a run bounded by ``max_steps`` and/or ``max_seconds`` stops.

    The step bound is extrapolated from the mean time per step so far; the run stops at
    whichever bound comes first. ``None`` while nothing can be said (no bound, or a step
    bound and no step done yet).

    Examples:
        >>> time_left_s(step=10, elapsed_s=20.0, max_steps=40, max_seconds=180.0)
        60.0
        >>> time_left_s(step=10, elapsed_s=20.0, max_steps=None, max_seconds=30.0)
        10.0
    """
    candidates = []
    if max_seconds is not None:
        candidates.append(max(max_seconds - elapsed_s, 0.0))
    if max_steps is not None and step > 0:
        candidates.append(max(max_steps - step, 0) * elapsed_s / step)
    return min(candidates) if candidates else None


class StepsAndTimeLeft(Callback):
    """One progress line for a run bounded by steps and/or time: steps, elapsed, time left, loss.

    Lightning's own bars count epochs, which mean nothing to a time-bounded run on an
    endless synthetic stream (they read ``Epoch 0/-2``), and show the logger's version
    number. Use it with ``Trainer(enable_progress_bar=False)``.

    Args:
        max_steps: the run's step limit, or ``None``.
        max_seconds: the run's time limit, or ``None``.
        console: the ``rich`` console to draw on (default: a new one).
    """

    def __init__(
        self, max_steps: int | None, max_seconds: float | None, console: Any = None
    ) -> None:
        from rich.console import Console

        super().__init__()
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.console = console or Console()
        self._progress: Any = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._started = time.monotonic()
        self._progress = Progress(
            TextColumn("training"),
            BarColumn(),
            TextColumn("{task.fields[steps]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}  {task.fields[loss]}"),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=1.0, steps=self._steps_text(0), left="", loss=""
        )

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._progress is None:
            return
        step = trainer.global_step
        elapsed = time.monotonic() - self._started
        left = time_left_s(step, elapsed, self.max_steps, self.max_seconds)
        fractions = [0.0]
        if self.max_steps:
            fractions.append(step / self.max_steps)
        if self.max_seconds:
            fractions.append(elapsed / self.max_seconds)
        loss = trainer.callback_metrics.get("train/loss")
        self._progress.update(
            self._task,
            completed=min(max(fractions), 1.0),
            steps=self._steps_text(step),
            left="" if left is None else f"{_clock(left)} left",
            loss="" if loss is None else f"loss {float(loss):.4f}",
        )

    def _steps_text(self, step: int) -> str:
        return f"step {step}" + (f"/{self.max_steps}" if self.max_steps is not None else "")

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._stop()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._stop()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(math.ceil(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def _smallest_learned_model() -> str | None:
    from hdrzoo.hub import create_model, list_models

    sizes = {}
    for name in list_models():
        params = sum(p.numel() for p in create_model(name).net.parameters())
        if params > 0:
            sizes[name] = params
    return min(sizes, key=sizes.get) if sizes else None


class CosineOverBudget(Callback):
    """Cosine learning-rate decay from each group's initial rate to 0 over a run's budget.

    The budget is ``max_steps`` and/or ``max_seconds``; progress is the larger of the two
    fractions used, so a time-bounded run decays with the clock and a step-bounded one
    exactly (deterministically) with the steps. The rate for step k is
    ``lr0 * (1 + cos(pi * progress)) / 2``.

    Args:
        max_steps: the run's step limit, or ``None``.
        max_seconds: the run's time limit, or ``None``.
    """

    def __init__(self, max_steps: int | None, max_seconds: float | None) -> None:
        super().__init__()
        if not (max_steps or max_seconds):
            raise HDRZooError("CosineOverBudget needs max_steps or max_seconds")
        self.max_steps = max_steps
        self.max_seconds = max_seconds

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._started = time.monotonic()
        self._initial = [
            [group["lr"] for group in optimizer.param_groups] for optimizer in trainer.optimizers
        ]

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        progress = 0.0
        if self.max_steps:
            progress = max(progress, trainer.global_step / self.max_steps)
        if self.max_seconds:
            progress = max(progress, (time.monotonic() - self._started) / self.max_seconds)
        factor = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        for optimizer, rates in zip(trainer.optimizers, self._initial):
            for group, rate in zip(optimizer.param_groups, rates):
                group["lr"] = rate * factor


def demo_recipe(
    name: str, seed: int = 0, max_steps: int | None = None, max_seconds: float | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """The demo's training recipe for model ``name``: ``(module, datamodule, trainer_kwargs)``.

    The module (AdamW at the recipe's learning rate, weight decay 1e-4) and the synthetic
    data module are built after seeding everything with ``seed``; ``trainer_kwargs`` holds
    the recipe's optimisation settings for ``lightning.Trainer`` (gradient clipping, and a
    :class:`CosineOverBudget` callback over ``max_steps`` / ``max_seconds`` where the recipe
    decays its rate). The tests train with exactly this recipe.
    """
    import lightning as L

    from hdrzoo.data.modules import SyntheticDataModule
    from hdrzoo.hub import create_model

    settings = DEMO_SETTINGS.get(name, {})
    lr = settings.get("lr", 1e-3)
    L.seed_everything(seed, verbose=False)
    module = create_model(
        name,
        optimizer=lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=1e-4),
        **settings.get("model", {}),
    )
    data = SyntheticDataModule(seed=seed, **settings.get("data", {}))
    trainer_kwargs = dict(settings.get("trainer", {}))
    if settings.get("cosine_decay") and (max_steps or max_seconds):
        trainer_kwargs["callbacks"] = [CosineOverBudget(max_steps, max_seconds)]
    return module, data, trainer_kwargs


def _train(
    name: str, out_dir: Path, minutes: float, max_steps: int | None, seed: int, console
) -> Any:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    # The demo's console is for the user: keep Lightning's tips and its own internal
    # deprecation notices out of it (warnings and errors still show).
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings(
        "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning
    )

    module, data, recipe = demo_recipe(name, seed, max_steps, minutes * 60.0)
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
        callbacks=[
            StepsAndTimeLeft(max_steps, minutes * 60.0, console),
            *recipe.pop("callbacks", []),
        ],
        enable_progress_bar=False,
        enable_model_summary=False,
        **recipe,
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

    title = f"demo scene (seed {SCENE_SEED_OFFSET + seed})"
    table = Table(title=title)
    for column in ("method", *METRIC_COLUMNS.values()):
        table.add_column(column)
    scores: dict[str, dict[str, float]] = {}
    for method, hdr in results.items():
        scores[method] = metrics.evaluate(hdr, scene.gt, metrics=tuple(METRIC_COLUMNS))
        table.add_row(method, *_formatted(scores[method]))

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
    _write_metrics(out, title, scores, scene_seed=SCENE_SEED_OFFSET + seed, model=name)

    console.print(table)
    console.print(
        f"wrote {out}/comparison.png, {out}/metrics.md and the HDR images in "
        f"{time.monotonic() - started:.0f} s"
    )
    return scores


def _formatted(score: dict[str, float]) -> list[str]:
    return [f"{score[k]:.4f}" if k == "ssim_mu" else f"{score[k]:.2f}" for k in METRIC_COLUMNS]


def _write_metrics(
    out: Path,
    title: str,
    scores: dict[str, dict[str, float]],
    scene_seed: int,
    model: str | None,
) -> None:
    """``metrics.md`` (the table printed) and ``metrics.json`` (the same, unrounded)."""
    from hdrzoo.io import atomic_path

    lines = [
        f"# {title}",
        "",
        "| method | " + " | ".join(METRIC_COLUMNS.values()) + " |",
        "| --- |" + " ---: |" * len(METRIC_COLUMNS),
    ]
    lines += [f"| {m} | " + " | ".join(_formatted(s)) + " |" for m, s in scores.items()]
    record = {"scene_seed": scene_seed, "model": model, "metrics": scores}
    with atomic_path(out / "metrics.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
