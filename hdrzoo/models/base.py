"""`HDRModule`: the LightningModule skeleton every model of the zoo shares.

A paper's module subclasses it, builds its network in ``__init__`` as ``self.net`` (a plain
``nn.Module`` with JSON-able constructor arguments, attributes ``frames`` and
``size_multiple``), calls ``self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])``
and overrides :meth:`HDRModule.compute_loss` (and, if its training forward differs from
inference, :meth:`HDRModule.training_forward`). Everything else lives here: the steps over
the batch dict, DDP-safe torchmetrics, optimiser and scheduler from the CLI, ``merge()``.

The batch dict is the data contract (ARCHITECTURE.md): ``ldr (B, N, 3, H, W)``,
``exposures (B, N)``, ``ref (B,)`` long, optionally ``gt (B, 3, H, W)`` and ``name``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric

from hdrzoo.errors import HDRZooError, InputSizeError

__all__ = ["NetOutput", "HDRModule", "check_frame_count"]

EVAL_METRICS = ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l")


@dataclass
class NetOutput:
    """What a network returns: the linear HDR ``hdr (B, 3, H, W)`` plus named auxiliary tensors."""

    hdr: torch.Tensor
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


def check_frame_count(net: nn.Module, num_frames: int, what: str = "input") -> None:
    """Raise :class:`InputSizeError` unless ``net`` accepts ``num_frames`` frames."""
    expected = getattr(net, "frames", None)
    if expected is None:
        if num_frames < 2:
            raise InputSizeError(
                f"{what}: {num_frames} frame(s); a bracket needs at least 2 exposures"
            )
    elif num_frames != expected:
        raise InputSizeError(
            f"{what}: {type(net).__name__} takes exactly {expected} frames, got {num_frames}; "
            "use a model that accepts any number of frames (classic, flexhdr) or select frames"
        )


def _default_optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=2e-4, weight_decay=1e-4)


class HDRModule(L.LightningModule):
    """Shared LightningModule of the zoo.

    Args:
        optimizer: a callable ``params -> Optimizer`` (LightningCLI injects one from
            ``--optimizer``); default AdamW(lr=2e-4, weight_decay=1e-4).
        lr_scheduler: optional callable ``optimizer -> LRScheduler`` (``--lr_scheduler``),
            stepped per epoch.

    Logged: ``train/loss`` and each loss term as ``train/<term>``; ``val/psnr_mu``,
    ``val/psnr_l``, ``val/ssim_mu``, ``val/ssim_l`` (per-image values averaged with
    torchmetrics, synchronised across DDP ranks), and the same under ``test/``.
    """

    net: nn.Module
    conventions: dict[str, Any] = {}
    """Input conventions of the model's reference weights (e.g. ``{"divisor": 65536}``); the
    CLI uses them as defaults when reading brackets."""
    init_weights: str | None = None
    """Weights file loaded into ``net`` when a Trainer first sets the module up (see
    :meth:`use_init_weights`)."""
    init_weights_parts: tuple[str, ...] | None = None
    """Submodules of ``net`` that :attr:`init_weights` initialises (``None``: all of it)."""
    net_weights_loaded: bool = False
    """Whether trained weights reached ``net`` (from :attr:`init_weights`, a checkpoint
    Lightning restores, or ``hdrzoo.load``); tracked once :meth:`use_init_weights` ran."""

    def __init__(
        self,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.optimizer_factory = optimizer or _default_optimizer
        self.scheduler_factory = lr_scheduler
        self.eval_metrics = nn.ModuleDict(
            {f"{stage}_{name}": MeanMetric() for stage in ("val", "test") for name in EVAL_METRICS}
        )

    # ---------------------------------------------------------------- network -----
    @property
    def frames(self) -> int | None:
        """Frame count the network takes (``None``: any N >= 2)."""
        return getattr(self.net, "frames", None)

    @property
    def size_multiple(self) -> int:
        """H and W the network sees must be multiples of this (``merge`` pads)."""
        return int(getattr(self.net, "size_multiple", 1))

    def forward(self, ldr: torch.Tensor, exposures: torch.Tensor, ref: torch.Tensor) -> NetOutput:
        """Run the network on a batch: ``ldr (B, N, 3, H, W)``, ``exposures (B, N)``, ``ref (B,)``."""
        out = self.net(ldr, exposures, ref)
        return out if isinstance(out, NetOutput) else NetOutput(hdr=out)

    def training_forward(self, batch: dict[str, Any]) -> NetOutput:
        """The forward used by ``training_step``; override when training differs from inference."""
        return self(batch["ldr"], batch["exposures"], batch["ref"])

    def evaluation_forward(self, batch: dict[str, Any]) -> NetOutput:
        """The forward used by validation and test steps: the frames only, as at inference.

        Override when evaluating a network needs more of the batch, e.g. a training stage
        whose network takes a prior from the ground truth ``batch["gt"]``.
        """
        return self(batch["ldr"], batch["exposures"], batch["ref"])

    def compute_loss(
        self, out: NetOutput, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(loss, {term name: value})``; every trainable model overrides this."""
        raise HDRZooError(
            f"{type(self).__name__} defines no training loss; it can be validated and tested only"
        )

    # ---------------------------------------------------------- initial weights -----
    def use_init_weights(self, source: str | None, parts: Iterable[str] | None = None) -> None:
        """Start from the weights in ``source`` (call it once ``self.net`` exists).

        The file is read when a Trainer first calls :meth:`setup` (fit, validate, test or
        predict), not here: building a module opens no file. Lightning calls ``setup`` before
        it restores a checkpoint (resume, ``--ckpt_path``), so a checkpoint wins; weights
        loaded into ``self.net`` by any route before that (``hdrzoo.load``) win as well.

        Args:
            source: any weights file :func:`hdrzoo.hub.load_weights_into` reads (``.pth``
                the model converts, ``.safetensors``, Lightning ``.ckpt``), or ``None``.
            parts: names of ``self.net``'s submodules to initialise from the file's tensors
                of the same names, the rest of the file ignored (a later training stage
                starting from what it shares with an earlier stage's network); ``None``:
                the whole network, strictly.
        """
        self.init_weights = None if source is None else str(source)
        self.init_weights_parts = None if parts is None else tuple(parts)
        self.net_weights_loaded = False
        self.net.register_load_state_dict_post_hook(self._note_weights_loaded)

    def _note_weights_loaded(self, module: nn.Module, incompatible_keys: Any) -> None:
        self.net_weights_loaded = True

    def setup(self, stage: str) -> None:
        if self.init_weights is not None and not self.net_weights_loaded:
            # File I/O lives in hub, which imports the models: import it when needed.
            from hdrzoo.hub import load_weights_into

            load_weights_into(self, self.init_weights, parts=self.init_weights_parts)
            # Only once: `fit` then `test` must test the trained network.
            self.net_weights_loaded = True

    # ------------------------------------------------------------------ steps -----
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if "gt" not in batch:
            raise HDRZooError(
                "training needs ground truth: the batch has no 'gt' (use a dataset with HDR targets)"
            )
        out = self.training_forward(batch)
        loss, terms = self.compute_loss(out, batch)
        batch_size = batch["ldr"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=batch_size)
        return loss

    def _evaluate(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        from hdrzoo import metrics

        out = self.evaluation_forward(batch)
        if "gt" in batch:
            batch_size = batch["ldr"].shape[0]
            for name in EVAL_METRICS:
                per_image = getattr(metrics, name)(
                    out.hdr.float(), batch["gt"].float(), reduction="none"
                )
                metric = self.eval_metrics[f"{stage}_{name}"]
                metric.update(per_image)
                self.log(
                    f"{stage}/{name}", metric, prog_bar=name == "psnr_mu", batch_size=batch_size
                )
        return out.hdr

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "test")

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> torch.Tensor:
        return self(batch["ldr"], batch["exposures"], batch["ref"]).hdr

    # -------------------------------------------------------------- optimiser -----
    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise HDRZooError(f"{type(self).__name__} has no trainable parameters: nothing to fit")
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from hdrzoo.errors import ModelError
        from hdrzoo.models.registry import model_name_of

        # Lets `hdrzoo.load("last.ckpt")` rebuild the right model without being told its name;
        # a user's own unregistered subclass simply saves no entry.
        with contextlib.suppress(ModelError):
            checkpoint["hdrzoo"] = {"model": model_name_of(self)}

    # -------------------------------------------------------------- inference -----
    def merge(
        self, bracket: Any, exposures: Any = None, ref: int | None = None, **kwargs: Any
    ) -> torch.Tensor:
        """Merge one bracket into linear HDR ``(3, H, W)``; see :func:`hdrzoo.inference.merge`."""
        from hdrzoo.inference import merge

        return merge(self, bracket, exposures=exposures, ref=ref, **kwargs)
