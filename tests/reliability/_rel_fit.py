"""Instrumentation for ``hdrzoo fit`` runs started by the reliability tests.

Callbacks named in the test configs by class path (``_rel_fit.Recorder``); the test puts
this folder on ``PYTHONPATH``. They only observe, except :class:`StallAt`, which freezes a
run at a chosen step so that the test can kill it there deterministically.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from _tiny_model import TinyModule

from hdrzoo.models.registry import register_model
from hdrzoo.ops.tonemap import mu_law

TINY_FIT = "tiny_fit"


class Recorder(L.Callback):
    """Writes what a resumed run starts from and every step it takes, for the test to check.

    ``{folder}/start_{pid}.pt``: ``global_step`` and the optimizer's state dict at
    ``on_train_start`` (after Lightning restored a checkpoint, before the first batch).
    ``{folder}/steps.jsonl``: one line per training batch (pid, global step before the batch,
    batch index, loss) and, on rank 0, the logged validation metrics at each validation end.
    """

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def _write(self, record: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "steps.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"pid": os.getpid(), **record}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {
            "global_step": trainer.global_step,
            "optimizer": trainer.optimizers[0].state_dict(),
            "rank": trainer.global_rank,
        }
        torch.save(state, self.folder / f"start_{os.getpid()}.pt")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._write(
            {
                "event": "step",
                "rank": trainer.global_rank,
                "global_step": trainer.global_step,
                "batch_idx": batch_idx,
                "loss": float(loss),
            }
        )

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self._write(
            {
                "event": "val",
                "rank": trainer.global_rank,
                "global_step": trainer.global_step,
                "metrics": metrics,
            }
        )


class StallAt(L.Callback):
    """Freeze the run after training step ``HDRZOO_TEST_STALL_AT`` (if set) until it is killed.

    Before sleeping it touches ``{folder}/stalled`` so that the test knows where the run is.
    Without the environment variable it does nothing (the resumed run uses the same config).
    """

    def __init__(self, folder: str, seconds: float = 300.0) -> None:
        self.folder = Path(folder)
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stall_at = os.environ.get("HDRZOO_TEST_STALL_AT")
        if stall_at is None or trainer.global_step != int(stall_at):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "stalled").write_text(str(trainer.global_step))
        deadline = time.monotonic() + self.seconds
        # Sleep in slices: Python runs signal handlers between them, and a SIGTERM (which
        # Lightning turns into a flag) ends the stall so that Lightning can stop gracefully.
        while time.monotonic() < deadline and not trainer.received_sigterm:
            time.sleep(0.05)


class TinyFitModule(TinyModule):
    """``TinyModule`` with its mu-law L1 taken on the output clamped at 0.

    ``TinyModule``'s residual can go below ``-1/mu`` on real brackets, where ``mu_law`` is
    NaN; a loss curve of NaN would make every comparison below vacuous.
    """

    def compute_loss(self, out, batch):
        l1_mu = (mu_law(out.hdr.clamp(min=0)) - mu_law(batch["gt"])).abs().mean()
        return l1_mu, {"l1_mu": l1_mu}


if os.environ.get("HDRZOO_TEST_REGISTER") == "1":
    # In `hdrzoo fit` children only: the checkpoint then names its model, so that
    # `hdrzoo.load(ckpt)` works without being told. Tests register into a registry copy.
    register_model(TINY_FIT)(TinyFitModule)
